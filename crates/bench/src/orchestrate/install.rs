//! Installs etcd and Redis from Debian's packages when they are missing.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `command -v`: the first executable named `name` on PATH (plus the sbin directories,
/// which a non-login root shell may lack).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"])
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| is_executable(p));
    found
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Makes sure each `(binary, package)` binary exists, installing the missing packages
/// with `apt-get install -y`. `apt-get update` runs only when the install fails (stale
/// or empty package lists), so a machine with fresh lists is not slowed down.
pub fn ensure(wanted: &[(&str, &str)]) -> Result<(), String> {
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(bin, _)| which(bin).is_none())
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("kvbench: installing {} (apt-get)", missing.join(" "));
    let _guard = NoServiceStart::new();
    if apt(&["install", "-y", "--no-install-recommends"], &missing).is_err() {
        apt(&["update"], &[])?;
        apt(&["install", "-y", "--no-install-recommends"], &missing)?;
    }
    for (bin, pkg) in wanted {
        if which(bin).is_none() {
            return Err(format!("installed {pkg} but `{bin}` is still not on PATH"));
        }
    }
    Ok(())
}

fn apt(args: &[&str], pkgs: &[&str]) -> Result<(), String> {
    let status = Command::new("apt-get")
        .args(args)
        .args(pkgs)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("cannot run apt-get: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`apt-get {} {}` failed ({status}); install them by hand (as root) and rerun",
            args.join(" "),
            pkgs.join(" ")
        ))
    }
}

/// Debian's packages start their service on install (Redis on 6379, etcd on 2379). Those
/// would be processes kvbench started and does not stop, eating CPU during the run, so
/// while installing, a `policy-rc.d` that forbids starts is in place (Debian's own
/// mechanism, the one container images use), and removed after.
struct NoServiceStart {
    path: Option<PathBuf>,
}

impl NoServiceStart {
    fn new() -> Self {
        let p = PathBuf::from("/usr/sbin/policy-rc.d");
        if p.exists() {
            return NoServiceStart { path: None };
        }
        let ok = std::fs::write(&p, "#!/bin/sh\nexit 101\n").is_ok() && {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).is_ok()
        };
        NoServiceStart {
            path: ok.then_some(p),
        }
    }
}

impl Drop for NoServiceStart {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}
