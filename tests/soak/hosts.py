"""Hosts as Linux network namespaces on one bridge, and their removal, whatever happens.

Every name carries PREFIX and the harness's pid, so a run can find what an earlier run that
died left behind (its pid is gone) and remove it, and never touches another live run's.
Addresses come from 198.18.0.0/24 (RFC 2544's benchmarking range, routed nowhere), and no
namespace has a default route: a process inside can reach the other hosts and its own
loopback, nothing else. The root namespace gets the bridge's address so the harness can
reach the hosts to load and check them.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PREFIX = "rhsk"
SUBNET = "198.18.0"
BRIDGE_ADDRESS = f"{SUBNET}.1"
# Every `ip` and `nft` call is quick; one that hangs means a wedged kernel object, not load.
COMMAND_TIMEOUT = 20.0

# The deployment's hosts and their last address octet. Short names: veth names are
# limited to 15 characters and carry the prefix and pid.
HOSTS = {
    "data": 10,
    "edge": 20,
    "web1": 31,
    "web2": 32,
    "worker1": 41,
    "worker2": 42,
    "ops": 50,
    "rivya": 60,
}


def run(*command: str, check: bool = True, timeout: float = COMMAND_TIMEOUT) -> str:
    """Run a short command; return its stdout, raise with its stderr when it fails."""
    done = subprocess.run(
        list(command), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


@dataclass(frozen=True)
class Host:
    """One namespace: its short name, its namespace name and address."""

    name: str
    netns: str
    address: str

    def exec(self, *command: str) -> list[str]:
        """Return `command` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.netns, *command]


class Network:
    """The bridge and the namespaces of one run, named after its pid."""

    def __init__(self, pid: int | None = None) -> None:
        self.pid = os.getpid() if pid is None else pid
        self.tag = f"{PREFIX}{self.pid}"
        self.bridge = f"{self.tag}br"
        self.hosts = {
            name: Host(name, f"{self.tag}-{name}", f"{SUBNET}.{octet}")
            for name, octet in HOSTS.items()
        }

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def create(self) -> None:
        """Make the bridge and every host; on any failure what was made is removed."""
        try:
            run("ip", "link", "add", self.bridge, "type", "bridge")
            run("ip", "addr", "add", f"{BRIDGE_ADDRESS}/24", "dev", self.bridge)
            run("ip", "link", "set", self.bridge, "up")
            for number, host in enumerate(self.hosts.values()):
                self._add_host(host, number)
        except BaseException:
            self.destroy()
            raise

    def _add_host(self, host: Host, number: int) -> None:
        outside, inside = f"{self.tag}v{number}", f"{self.tag}p{number}"
        run("ip", "netns", "add", host.netns)
        run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
        run("ip", "link", "set", inside, "netns", host.netns)
        run("ip", "link", "set", outside, "master", self.bridge, "up")
        run("ip", "-n", host.netns, "addr", "add", f"{host.address}/24", "dev", inside)
        run("ip", "-n", host.netns, "link", "set", inside, "up")
        run("ip", "-n", host.netns, "link", "set", "lo", "up")
        # No default route is ever added: the /24 and loopback are all a host can reach.
        routes = run("ip", "-n", host.netns, "route", "show", "default")
        assert not routes.strip(), f"{host.netns} has a default route: {routes}"

    def destroy(self) -> None:
        """Kill every process left in the hosts, then remove the namespaces and the bridge."""
        remove_run(self.tag)


def remove_run(tag: str) -> None:
    """Remove everything named `tag`: processes in its namespaces, namespaces, links."""
    namespaces = [ns for ns in list_namespaces() if ns.startswith(tag + "-")]
    for netns in namespaces:
        kill_namespace_processes(netns)
    for netns in namespaces:
        run("ip", "netns", "del", netns, check=False)
    for link in list_links():
        if link.startswith(tag):
            run("ip", "link", "del", link, check=False)


def kill_namespace_processes(netns: str, grace: float = 5.0) -> None:
    """SIGTERM every process of a namespace, then SIGKILL what is left after `grace`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = namespace_pids(netns)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while namespace_pids(netns) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not namespace_pids(netns):
            return


def namespace_pids(netns: str) -> list[int]:
    """Return the pids of the processes in a namespace (zombies included, as `ip` lists)."""
    out = run("ip", "netns", "pids", netns, check=False)
    return [int(word) for word in out.split() if word.isdigit() and _alive(int(word))]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def list_namespaces() -> list[str]:
    return [line.split()[0] for line in run("ip", "netns", "list").splitlines() if line.strip()]


def list_links() -> list[str]:
    names = []
    for line in run("ip", "-o", "link", "show").splitlines():
        # "12: name@peer: <...>" -> name
        parts = line.split(":", 2)
        if len(parts) > 1:
            names.append(parts[1].strip().split("@", 1)[0])
    return names


_TAG = re.compile(rf"^{PREFIX}(\d+)")


def live_runs() -> list[str]:
    """Return the tags of other soaks running now (they use the same addresses)."""
    tags = set()
    for name in list_namespaces() + list_links():
        match = _TAG.match(name)
        if match and int(match.group(1)) != os.getpid() and _alive(int(match.group(1))):
            tags.add(f"{PREFIX}{match.group(1)}")
    return sorted(tags)


def remove_leftovers() -> list[str]:
    """Remove what runs whose process is gone left behind; return their tags."""
    tags = set()
    for name in list_namespaces() + list_links():
        match = _TAG.match(name)
        if match and not _alive(int(match.group(1))):
            tags.add(f"{PREFIX}{match.group(1)}")
    for tag in sorted(tags):
        remove_run(tag)
    return sorted(tags)


def namespace_inodes(tag: str) -> set[int]:
    """Return the inode of each namespace of run `tag`: a process inside one links to it."""
    inodes = set()
    for netns in list_namespaces():
        if netns.startswith(tag + "-"):
            with contextlib.suppress(OSError):
                inodes.add(os.stat(f"/run/netns/{netns}").st_ino)
    return inodes


def what_is_left(tag: str, inodes: set[int]) -> list[str]:
    """Name everything of run `tag` still there: namespaces, links, mounts, processes.

    A process counts when it names the tag (our files) or still lives in one of the
    namespaces whose inodes were taken while they existed (a deleted namespace lives on
    as long as a process is inside it, no longer listed by `ip netns`).
    """
    left = [f"namespace {ns}" for ns in list_namespaces() if ns.startswith(tag)]
    left += [f"link {link}" for link in list_links() if link.startswith(tag)]
    left += [f"mount {line.split()[1]}" for line in _mounts() if tag in line.split()[1]]
    left += [f"process {pid} ({cmd})" for pid, cmd in processes_mentioning(tag)]
    left += [f"process {pid} in a namespace of the run" for pid in processes_in(inodes)]
    return left


def processes_in(inodes: set[int]) -> list[int]:
    """Return live processes whose network namespace is one of `inodes`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            inode = os.stat(entry / "ns" / "net").st_ino
        except OSError:
            continue
        if inode in inodes and _alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _mounts() -> list[str]:
    return Path("/proc/mounts").read_text().splitlines()


def processes_mentioning(tag: str) -> list[tuple[int, str]]:
    """Return live processes whose command line names `tag` (our namespaces, our files)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if tag in cmdline and _alive(int(entry.name)):
            found.append((int(entry.name), cmdline.strip()[:120]))
    return found
