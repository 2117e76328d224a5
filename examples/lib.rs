//! Shared by the example programs: nothing yet; each example stands alone.
