//! `crate = path` with the runtime under another name.

use observability::propagation::TraceCarrier;
use observability::{Carried, child_workflow, step, workflow};

/// A message type derived through the renamed crate.
#[derive(Carried, Default, Debug)]
#[trace_context(crate = observability)]
pub struct Job {
    /// The carrier.
    #[trace_context]
    pub context: TraceCarrier,
}

/// A remote child reached through the renamed crate.
#[child_workflow(crate = observability, parent = job)]
pub fn remote_child(job: &Job) -> u32 {
    observability::current_workflow().map_or(0, |workflow| workflow.depth())
}

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
    fn the_derive_and_parent_reach_a_renamed_dependency() {
        use observability::Carried as _;
        let capture = observability::testing::Capture::new();
        let depth = capture.run(|| {
            #[observability::workflow(crate = observability)]
            fn sender() -> u32 {
                let mut job = super::Job::default();
                job.inject_current_context();
                super::remote_child(&job)
            }
            sender()
        });
        assert_eq!(depth, 1);
    }

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
