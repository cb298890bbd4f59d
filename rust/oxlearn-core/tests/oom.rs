//! Allocations sized by the input fail with `CoreError::OutOfMemory` instead of aborting.

use oxlearn_core::CoreError;
use oxlearn_core::mlp::Workspace;
use oxlearn_core::mlp::buf::Buf;

/// A hidden layer of 2^40 units: a chunk's activations alone are petabytes.
const HUGE: usize = 1 << 40;

fn is_oom<T>(r: oxlearn_core::Result<T>, what: &str) -> bool {
    matches!(r, Err(CoreError::OutOfMemory { what: w, .. }) if w.contains(what))
}

#[test]
fn workspaces_too_large_to_allocate_are_errors() {
    assert!(is_oom(Workspace::<f64>::new(&[1, HUGE, 1], 200), "MLP"));
    assert!(is_oom(
        Workspace::<f32>::forward_only(&[1, HUGE, 1], 10),
        "MLP"
    ));
    assert!(is_oom(
        Workspace::<f64>::whole_batch(&[3, 4, 2], HUGE),
        "MLP"
    ));
    // Sizes whose byte count overflows are errors too.
    assert!(is_oom(
        Workspace::<f64>::new(&[1, usize::MAX / 2, 1], 200),
        "MLP"
    ));
    // And ordinary ones still work.
    let ws = Workspace::<f64>::new(&[3, 4, 2], 50).unwrap();
    assert_eq!(ws.capacity(), 50);
}

#[test]
fn aligned_buffers_too_large_to_allocate_are_errors() {
    assert!(is_oom(Buf::try_filled(HUGE << 10, 0.0_f64, "buf"), "buf"));
    assert!(is_oom(
        Buf::try_with_room(HUGE << 10, 0.0_f32, "room"),
        "room"
    ));
    assert!(is_oom(Buf::try_filled(usize::MAX, 0_u8, "max"), "max"));
}
