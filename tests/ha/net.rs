//! Test networks made of network namespaces (iproute2's `ip netns`), veth links and
//! iptables rules, as root. A namespace's name carries the test process's id; all
//! are deleted when the [`Netns`] is dropped. Where they cannot be made (not root,
//! no iproute2 or iptables), [`Netns::make`] says why and the test says SKIPPED.

use std::process::{Command, Stdio};

/// Namespaces made for one test, deleted on drop.
pub(crate) struct Netns {
    names: Vec<String>,
}

impl Drop for Netns {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

fn quiet(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Netns {
    /// Namespaces `<short>-<pid>` for each short name, loopback up, iptables
    /// usable in each; `Err(why)` when they cannot be made.
    pub(crate) fn make(shorts: &[&str]) -> Result<Netns, String> {
        if !quiet("iptables", &["--version"]) {
            return Err("no iptables (Debian: apt-get install iptables)".into());
        }
        let pid = std::process::id();
        let mut made = Netns { names: Vec::new() };
        for short in shorts {
            let name = format!("{short}-{pid}");
            if !quiet("ip", &["netns", "add", &name]) {
                return Err(format!(
                    "cannot make network namespace {name} (root and iproute2 needed)"
                ));
            }
            made.names.push(name.clone());
            if !made.sh(&name, "ip link set lo up && iptables -L -n") {
                return Err(format!("no loopback or iptables in namespace {name}"));
            }
        }
        Ok(made)
    }

    /// The full name of the namespace made for `short`.
    pub(crate) fn name(&self, short: &str) -> String {
        format!("{short}-{}", std::process::id())
    }

    /// Runs `script` (sh) in namespace `name`; whether it succeeded.
    pub(crate) fn sh(&self, name: &str, script: &str) -> bool {
        let out = Command::new("ip")
            .args(["netns", "exec", name, "sh", "-c", script])
            .output()
            .unwrap();
        if !out.status.success() {
            eprintln!(
                "in {name}: `{script}` failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out.status.success()
    }

    /// Links namespaces `a` and `b` with a veth pair, `a_addr` and `b_addr` (CIDR)
    /// on its ends, named `a_if` and `b_if` there.
    pub(crate) fn link(
        &self,
        (a, a_if, a_addr): (&str, &str, &str),
        (b, b_if, b_addr): (&str, &str, &str),
    ) -> bool {
        let pid = std::process::id() % 100_000;
        let (ta, tb) = (format!("pa{pid}{a_if}"), format!("pb{pid}{b_if}"));
        let (ta, tb) = (&ta[..ta.len().min(15)], &tb[..tb.len().min(15)]);
        quiet("ip", &["link", "add", ta, "type", "veth", "peer", "name", tb])
            && quiet("ip", &["link", "set", ta, "netns", a])
            && quiet("ip", &["link", "set", tb, "netns", b])
            && self.sh(a, &format!("ip link set {ta} name {a_if} && ip addr add {a_addr} dev {a_if} && ip link set {a_if} up"))
            && self.sh(b, &format!("ip link set {tb} name {b_if} && ip addr add {b_addr} dev {b_if} && ip link set {b_if} up"))
    }
}
