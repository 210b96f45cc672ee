//! The conformance module (../README.md) in Rust.
use std::net::{IpAddr, Ipv6Addr};
use vigil::{Action, Event, Field, Kind, Priority, Rule, Verdict};

static MODULE: vigil::Module = vigil::Module {
    name: "conformance",
    version: "1.0.0",
    rules: &[
        Rule { name: "conf-shell", kinds: &[Kind::EXEC], priority: Priority::Warning, eval: shell, ..Rule::DEFAULT },
        Rule { name: "conf-kill-port", kinds: &[Kind::CONNECT], priority: Priority::Notice, eval: kill_port, ..Rule::DEFAULT },
        Rule {
            name: "conf-block-arg",
            kinds: &[Kind::EXEC],
            priority: Priority::Error,
            action: Action::Block,
            eval: block_arg,
            ..Rule::DEFAULT
        },
        Rule { name: "conf-addr", kinds: &[Kind::CONNECT], priority: Priority::Notice, eval: addr, ..Rule::DEFAULT },
        Rule { name: "conf-setuid", kinds: &[Kind::SETUID], priority: Priority::Critical, eval: setuid, ..Rule::DEFAULT },
        Rule { name: "conf-memfd", kinds: &[Kind::EXEC], priority: Priority::Critical, eval: memfd, ..Rule::DEFAULT },
        Rule { name: "conf-observe", kinds: &[Kind::EXEC], priority: Priority::Debug, eval: observe, ..Rule::DEFAULT },
        Rule {
            name: "conf-admission",
            kinds: &[Kind::ADMISSION],
            priority: Priority::Warning,
            action: Action::Block,
            eval: admission,
            ..Rule::DEFAULT
        },
    ],
};
vigil::export!(MODULE);

fn shell(e: &Event) -> Verdict {
    if e.container_id() != "" && matches!(e.proc_name(), "bash" | "sh") {
        return vigil::alert(Priority::Default, "shell in container", &[Field::PROC_NAME, Field::CONTAINER_ID]);
    }
    vigil::allow()
}

fn kill_port(e: &Event) -> Verdict {
    if e.net_dst_port() == 4444 {
        return vigil::kill(Priority::Critical, "connect to 4444", &[Field::NET_DST_PORT]);
    }
    vigil::allow()
}

fn block_arg(e: &Event) -> Verdict {
    if e.proc_args().contains("--evil") {
        return vigil::fire("evil argument", &[]);
    }
    vigil::allow()
}

fn addr(e: &Event) -> Verdict {
    if e.net_dst_addr() == Some(IpAddr::V6(Ipv6Addr::LOCALHOST)) {
        return vigil::fire("loopback v6", &[]);
    }
    vigil::allow()
}

fn setuid(e: &Event) -> Verdict {
    if e.priv_id0() == -1 && e.priv_id1() == 0 && e.user_euid() != 0 {
        return vigil::fire("setuid root", &[Field::PRIV_ID1, Field::USER_EUID]);
    }
    vigil::allow()
}

fn memfd(e: &Event) -> Verdict {
    if e.proc_exe_memfd() {
        return vigil::alert(Priority::Critical, "memfd exec", &[]);
    }
    vigil::allow()
}

fn observe(_: &Event) -> Verdict {
    vigil::observe("exec", &[Field::PROC_EXE])
}

fn admission(_: &Event) -> Verdict {
    vigil::block(Priority::Default, "admission denied", &[])
}
