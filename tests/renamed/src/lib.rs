//! `crate = path` with the runtime under another name.

use observability::{step, workflow};

/// A workflow reached through the renamed crate.
#[workflow(crate = observability)]
pub fn renamed_workflow() -> u8 {
    renamed_step() + 1
}

#[step(crate = ::observability)]
fn renamed_step() -> u8 {
    1
}

#[cfg(test)]
mod tests {
    #[test]
    fn crate_option_reaches_a_renamed_dependency() {
        let capture = observability::testing::Capture::new();
        assert_eq!(capture.run(super::renamed_workflow), 2);
        assert_eq!(
            capture.tree().render_with(|key| key == "step.name"),
            "renamed_workflow #1 [workflow] Unset\n  renamed_step #2 [step] Unset\n    | step.name: \"renamed_step\"\n"
        );
    }
}
