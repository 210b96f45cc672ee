// Example rule: a shell started inside a container. See ../README.md.
import { Event, Field, Kind, Priority, Rule, Verdict, allow, fire, module, register } from "../assembly/vigil";
export * from "../assembly/exports";

module("assemblyscript-example", "0.1.0");

register(
  new Rule("Terminal shell in container", [Kind.Exec], Priority.Warning)
    .withDescription("A shell (bash, sh, zsh) was started inside a container.")
    .withTags(["container", "shell", "mitre_execution", "T1059"]),
  (e: Event): Verdict => {
    if (e.containerId() == "") return allow();
    const n = e.procName();
    if (n == "bash" || n == "sh" || n == "zsh") {
      return fire("Shell spawned in a container", [Field.ProcName, Field.ProcArgs, Field.ContainerId, Field.K8sPod]);
    }
    return allow();
  });
