//! The cheap clone: what the child does before irun has looked at it, and what it reads.

use super::*;

#[test]
fn a_spawn_blocks_every_signal_but_sigchld_unless_sigchld_is_caught() {
    let (chld, int) = (bit(libc::SIGCHLD), bit(libc::SIGINT));
    assert_eq!(spawn_mask(int), !chld);
    assert_eq!(spawn_mask(int | chld), !0);
}
