//! Allocation that fails with an error instead of aborting: buffers sized
//! from a file or a command line are allocated through [`try_vec`].

/// `n` default values, or `None` where memory cannot hold them: buffers sized
/// from a file or a command line are allocated fallibly (an error, never an
/// abort).
pub fn try_vec<T: Clone + Default>(n: u64) -> Option<Vec<T>> {
    let n = usize::try_from(n).ok()?;
    let mut v = Vec::new();
    v.try_reserve_exact(n).ok()?;
    v.resize(n, T::default());
    Some(v)
}
