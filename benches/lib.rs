//! Nothing here: the benchmark is the `overhead` bench target.
