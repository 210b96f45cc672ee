// The conformance module (../README.md) in AssemblyScript.
import {
  Action, Event, Field, Kind, Priority, Rule, Verdict,
  alert, allow, block, fire, kill, module, observe, register,
} from "../../../sdk/assemblyscript/assembly/vigil";
export * from "../../../sdk/assemblyscript/assembly/exports";

module("conformance", "1.0.0");

register(new Rule("conf-shell", [Kind.Exec], Priority.Warning), (e: Event): Verdict => {
  const n = e.procName();
  if (e.containerId() != "" && (n == "bash" || n == "sh")) {
    return alert(Priority.Default, "shell in container", [Field.ProcName, Field.ContainerId]);
  }
  return allow();
});

register(new Rule("conf-kill-port", [Kind.Connect], Priority.Notice), (e: Event): Verdict => {
  if (e.netDstPort() == 4444) return kill(Priority.Critical, "connect to 4444", [Field.NetDstPort]);
  return allow();
});

register(new Rule("conf-block-arg", [Kind.Exec], Priority.Error, Action.Block), (e: Event): Verdict => {
  if (e.procArgs().contains("--evil")) return fire("evil argument");
  return allow();
});

register(new Rule("conf-addr", [Kind.Connect], Priority.Notice), (e: Event): Verdict => {
  const a = e.netDstAddr();
  if (a.is6() && a.isLoopback()) return fire("loopback v6");
  return allow();
});

register(new Rule("conf-setuid", [Kind.Setuid], Priority.Critical), (e: Event): Verdict => {
  if (e.privId0() == -1 && e.privId1() == 0 && e.userEuid() != 0) {
    return fire("setuid root", [Field.PrivId1, Field.UserEuid]);
  }
  return allow();
});

register(new Rule("conf-memfd", [Kind.Exec], Priority.Critical), (e: Event): Verdict => {
  if (e.procExeMemfd()) return alert(Priority.Critical, "memfd exec");
  return allow();
});

register(new Rule("conf-observe", [Kind.Exec], Priority.Debug), (e: Event): Verdict => observe("exec", [Field.ProcExe]));

register(new Rule("conf-admission", [Kind.Admission], Priority.Warning, Action.Block),
  (e: Event): Verdict => block(Priority.Default, "admission denied"));
