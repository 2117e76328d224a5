//! Macro errors: each case in `ui/fail` must fail to compile with exactly the
//! message in its `.stderr`, pointing at the user's token.

#[test]
fn macro_errors_point_at_the_offending_token() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/fail/*.rs");
}
