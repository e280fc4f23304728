//! The search's event list: every op's call and return event, sorted by
//! time, in a doubly linked list from which linearized ops are lifted and
//! restored in stack order (dancing links).

use crate::model::{KeyOp, Time};

/// Sentinel "no node" link, and the list head's node index.
const NIL: usize = usize::MAX;
pub(crate) const HEAD: usize = 0;

/// Event list over nodes `1..=2n`; node 0 is the head sentinel.
pub(crate) struct Events {
    pub next: Vec<usize>,
    prev: Vec<usize>,
    /// Per node: (op index, is this the call event).
    pub event: Vec<(usize, bool)>,
    pub call_node: Vec<usize>,
    return_node: Vec<usize>,
}

impl Events {
    pub(crate) fn new(ops: &[KeyOp]) -> Self {
        // At equal times calls sort before returns: ops that touch at one
        // instant count as concurrent (precedence needs complete < invoke).
        let mut order: Vec<(Time, bool, usize)> = Vec::with_capacity(2 * ops.len());
        for (i, op) in ops.iter().enumerate() {
            order.push((Time::At(op.invoke), false, i));
            order.push((op.ret, true, i));
        }
        order.sort_unstable();
        let nodes = order.len() + 1;
        let mut events = Events {
            next: (1..=nodes)
                .map(|n| if n == nodes { NIL } else { n })
                .collect(),
            prev: (0..nodes).map(|n| n.wrapping_sub(1)).collect(),
            event: Vec::with_capacity(nodes),
            call_node: vec![NIL; ops.len()],
            return_node: vec![NIL; ops.len()],
        };
        events.event.push((NIL, false));
        for (node, &(_, is_return, op)) in order.iter().enumerate().map(|(i, e)| (i + 1, e)) {
            events.event.push((op, !is_return));
            if is_return {
                events.return_node[op] = node;
            } else {
                events.call_node[op] = node;
            }
        }
        events
    }

    fn unlink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    /// Undoes `unlink(node)`; valid only in reverse order of unlinking.
    fn relink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = node;
        if n != NIL {
            self.prev[n] = node;
        }
    }

    pub(crate) fn lift(&mut self, op: usize) {
        self.unlink(self.call_node[op]);
        self.unlink(self.return_node[op]);
    }

    pub(crate) fn unlift(&mut self, op: usize) {
        self.relink(self.return_node[op]);
        self.relink(self.call_node[op]);
    }
}
