//! Example rule: a shell started inside a container. See ../README.md.
use vigil::{Event, Field, Kind, Priority, Rule, Verdict};

static MODULE: vigil::Module = vigil::Module {
    name: "rust-example",
    version: "0.1.0",
    rules: &[Rule {
        name: "Terminal shell in container",
        description: "A shell (bash, sh, zsh) was started inside a container.",
        priority: Priority::Warning,
        kinds: &[Kind::EXEC],
        tags: &["container", "shell", "mitre_execution", "T1059"],
        eval: shell,
        ..Rule::DEFAULT
    }],
};
vigil::export!(MODULE);

fn shell(e: &Event) -> Verdict {
    if e.container_id().is_empty() {
        return vigil::allow();
    }
    match e.proc_name() {
        "bash" | "sh" | "zsh" => vigil::fire(
            "Shell spawned in a container",
            &[Field::PROC_NAME, Field::PROC_ARGS, Field::CONTAINER_ID, Field::K8S_POD],
        ),
        _ => vigil::allow(),
    }
}
