//! The seed protocol's four-hex-digit IDs.

use raft::NodeId;

pub const BROADCAST: &str = "FFFF";

/// Parses exactly four hex digits.
pub fn parse_id(s: &str) -> Option<NodeId> {
    if s.len() != 4 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// Formats as four upper-case hex digits, as the harness prints them.
pub fn format_id(id: NodeId) -> String {
    format!("{:04X}", id & 0xFFFF)
}

pub fn format_leader(leader: Option<NodeId>) -> String {
    leader.map_or_else(|| BROADCAST.to_string(), format_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_roundtrip_and_reject_garbage() {
        assert_eq!(parse_id("00AF"), Some(0xAF));
        assert_eq!(format_id(0xAF), "00AF");
        assert_eq!(parse_id("0AF"), None);
        assert_eq!(parse_id("00G0"), None);
        assert_eq!(parse_id("+0AF"), None);
        assert_eq!(format_leader(None), "FFFF");
    }
}
