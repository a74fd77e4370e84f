"""Network faults on the path between the watched service and its dependency.

:class:`NetLab` puts the dependency (and the delay proxy in front of it) in a network namespace joined
to the host by a veth pair, so the service's calls cross a real link::

    demo service --(host) veth vh-NAME ==== veth vn-NAME (netns vigil-NAME)--> proxy :18081 --> dependency :18080

Faults act on that link only, never on loopback or the host's own interfaces: packet loss through
iptables ``statistic`` rules in the namespace, bandwidth through ``tc tbf`` on the namespace side, and
delay through the proxy (this kernel has no netem). Deleting the namespace removes the link, its
rules and qdiscs at once, which is also the last line of cleanup.
"""

from __future__ import annotations

import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import requests

from vigil.validation import measure
from vigil.validation.base import Fault, FaultError
from vigil.validation.journal import CleanupJournal


class NetLab(Fault):
    """The namespace, the veth link, the dependency and the proxy; the stage for the network faults."""

    type = "netlab"

    def __init__(
        self,
        journal: CleanupJournal,
        state_dir: Path,
        *,
        name: str = "val",
        dep_port: int = 18080,
        proxy_port: int = 18081,
    ) -> None:
        super().__init__(journal)
        if not name.isalnum() or len(name) > 10:
            raise FaultError(f"netlab name {name!r} must be alphanumeric, at most 10 characters (interface names)")
        self.name = name
        self.netns = f"vigil-{name}"
        self.host_if = f"vh-{name}"
        self.ns_if = f"vn-{name}"
        octet = 16 + zlib.crc32(name.encode()) % 200
        self.host_ip = f"10.213.{octet}.1"
        self.ns_ip = f"10.213.{octet}.2"
        self.dep_port = dep_port
        self.proxy_port = proxy_port
        self.delay_file = Path(state_dir) / f"netlab-{name}.delay_ms"

    @property
    def url(self) -> str:
        """Base URL of the dependency as the service sees it: through the link and the proxy."""
        return f"http://{self.ns_ip}:{self.proxy_port}"

    def params(self) -> dict[str, Any]:
        return {"netns": self.netns, "url": self.url, "host_if": self.host_if, "ns_if": self.ns_if}

    def in_ns(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv]

    def _start(self, argv: list[str]) -> None:
        proc = self.spawn(self.in_ns(*argv), stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline().strip() if proc.stdout else ""
        if line != "ready":
            raise FaultError(f"netlab: {argv[3]} did not start in {self.netns} (exit {proc.poll()})")

    def inject(self) -> None:
        self.journaled({"kind": "argv", "argv": ["ip", "netns", "del", self.netns]})
        self.sh(["ip", "netns", "add", self.netns])
        self.journaled({"kind": "argv", "argv": ["ip", "link", "del", self.host_if]})
        self.sh(["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if, "netns", self.netns])
        self.sh(["ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if])
        self.sh(["ip", "link", "set", self.host_if, "up"])
        self.sh(["ip", "-n", self.netns, "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if])
        self.sh(["ip", "-n", self.netns, "link", "set", self.ns_if, "up"])
        self.sh(["ip", "-n", self.netns, "link", "set", "lo", "up"])
        self.delay_file.parent.mkdir(parents=True, exist_ok=True)
        self.journaled({"kind": "rm", "path": str(self.delay_file)})
        self.delay_file.write_text("0")
        py = [sys.executable, "-m", "vigil.validation.netdep"]
        self._start([*py, "serve", "--port", str(self.dep_port)])
        self._start(
            [*py, "proxy", "--listen", f"0.0.0.0:{self.proxy_port}", "--upstream", f"127.0.0.1:{self.dep_port}",
             "--delay-file", str(self.delay_file)]
        )  # fmt: skip

    def measure(self) -> dict[str, Any]:
        probe = measure.http_probe(f"{self.url}/healthz", n=3)
        return {"probe": probe.as_dict(), "took_effect": probe.errors == 0}


def _probe_url(lab: NetLab) -> str:
    return f"{lab.url}/inventory/validation-probe"


class _LinkFault(Fault):
    def __init__(self, journal: CleanupJournal, lab: NetLab, *, max_duration_s: float = 120.0) -> None:
        super().__init__(journal, max_duration_s=max_duration_s)
        self.lab = lab

    def measure_baseline(self) -> dict[str, Any]:
        return measure.http_probe(_probe_url(self.lab), n=10, timeout_s=3).as_dict()


class PacketLoss(_LinkFault):
    """Drop a share of the packets entering the dependency's namespace (iptables ``statistic``)."""

    type = "network_loss"

    def __init__(
        self, journal: CleanupJournal, lab: NetLab, *, probability: float = 0.3, max_duration_s: float = 120.0
    ) -> None:
        super().__init__(journal, lab, max_duration_s=max_duration_s)
        self.probability = probability
        self._tag = f"vigil-val-{lab.name}"

    def params(self) -> dict[str, Any]:
        return {"probability": self.probability, "netns": self.lab.netns}

    def _rule(self, op: str, *rest: str) -> list[str]:
        return self.lab.in_ns("iptables", "-w", op, "INPUT", "-i", self.lab.ns_if, *rest)

    def inject(self) -> None:
        # A rule without a target only counts: it gives the denominator of the measured loss rate.
        count = ["-m", "comment", "--comment", f"{self._tag}-seen"]
        drop = ["-m", "statistic", "--mode", "random", "--probability", str(self.probability),
                "-m", "comment", "--comment", f"{self._tag}-drop", "-j", "DROP"]  # fmt: skip
        self.journaled({"kind": "argv", "argv": self._rule("-D", *count)})
        self.sh(self._rule("-A", *count), record=False)
        self.journaled({"kind": "argv", "argv": self._rule("-D", *drop)})
        self.sh(self._rule("-A", *drop))

    def counters(self) -> tuple[int, int]:
        out = self.sh(self.lab.in_ns("iptables", "-w", "-L", "INPUT", "-v", "-x", "-n"), record=False)
        seen = dropped = 0
        for line in out.splitlines():
            fields = line.split()
            if f"{self._tag}-seen" in line:
                seen = int(fields[0])
            elif f"{self._tag}-drop" in line:
                dropped = int(fields[0])
        return seen, dropped

    def measure(self) -> dict[str, Any]:
        seen0, drop0 = self.counters()
        probe = measure.http_probe(_probe_url(self.lab), n=20, timeout_s=3, deadline_s=6)
        seen1, drop1 = self.counters()
        seen, dropped = seen1 - seen0, drop1 - drop0
        rate = dropped / seen if seen else 0.0
        return {
            "packets_seen": seen,
            "packets_dropped": dropped,
            "loss_rate": round(rate, 3),
            "probe": probe.as_dict(),
            "took_effect": seen >= 10 and rate >= self.probability / 2,
        }


class BandwidthLimit(_LinkFault):
    """Throttle the dependency's answers with ``tc tbf`` on the namespace end of the link."""

    type = "network_bandwidth"

    def __init__(
        self, journal: CleanupJournal, lab: NetLab, *, rate_kbit: int = 256, max_duration_s: float = 120.0
    ) -> None:
        super().__init__(journal, lab, max_duration_s=max_duration_s)
        self.rate_kbit = rate_kbit
        self._blob_bytes = max(16_000, rate_kbit * 1000 // 8)  # about one second's worth at the limit

    def params(self) -> dict[str, Any]:
        return {"rate_kbit": self.rate_kbit, "netns": self.lab.netns}

    def _throughput(self, budget_s: float = 4.0) -> float:
        """kbit/s of a download over the link, reading for at most about ``budget_s``.

        A throttled link can stall a read for seconds (tbf drops, TCP backs off): a read that times out
        ends the measurement with what arrived so far, which is the throughput the link gave.
        """
        got = 0
        t0 = time.perf_counter()
        try:
            with requests.get(
                f"{self.lab.url}/blob?bytes={self._blob_bytes}", timeout=(3, budget_s), stream=True
            ) as resp:
                resp.raise_for_status()
                for chunk in resp.iter_content(2048):
                    got += len(chunk)
                    if time.perf_counter() - t0 > budget_s:
                        break
        except (requests.ConnectionError, requests.Timeout):
            if not got:
                raise
        return got * 8 / 1000 / (time.perf_counter() - t0)

    def measure_baseline(self) -> dict[str, Any]:
        base = super().measure_baseline()
        base["throughput_kbit_s"] = round(self._throughput(), 1)
        return base

    def inject(self) -> None:
        dev = ["dev", self.lab.ns_if]
        self.journaled({"kind": "argv", "argv": self.lab.in_ns("tc", "qdisc", "del", *dev, "root")})
        # burst must hold at least one full-size packet or tbf drops everything.
        self.sh(self.lab.in_ns("tc", "qdisc", "add", *dev, "root", "tbf", "rate", f"{self.rate_kbit}kbit",
                               "burst", "4kb", "latency", "200ms"))  # fmt: skip

    def measure(self) -> dict[str, Any]:
        kbit = self._throughput()
        probe = measure.http_probe(_probe_url(self.lab), n=10, timeout_s=3, deadline_s=4)
        return {
            "throughput_kbit_s": round(kbit, 1),
            "probe": probe.as_dict(),
            "took_effect": kbit <= 1.5 * self.rate_kbit,
        }


class NetworkDelay(_LinkFault):
    """Add ``delay_ms`` to every request on its way to the dependency, in the user-space proxy."""

    type = "network_delay"

    def __init__(
        self, journal: CleanupJournal, lab: NetLab, *, delay_ms: int = 300, max_duration_s: float = 120.0
    ) -> None:
        super().__init__(journal, lab, max_duration_s=max_duration_s)
        self.delay_ms = delay_ms

    def params(self) -> dict[str, Any]:
        return {"delay_ms": self.delay_ms, "proxy": self.lab.url}

    def inject(self) -> None:
        self.journaled({"kind": "write", "path": str(self.lab.delay_file), "text": "0"})
        self.lab.delay_file.write_text(str(self.delay_ms))
        self._commands.append(f"echo {self.delay_ms} > {self.lab.delay_file}  # read by the netdep proxy")
        time.sleep(0.25)  # the proxy re-reads the file every 100 ms

    def measure(self) -> dict[str, Any]:
        probe = measure.http_probe(_probe_url(self.lab), n=8, timeout_s=3 + self.delay_ms / 1000, deadline_s=5)
        added = probe.p50_ms - float(self.record.baseline.get("p50_ms", 0.0))
        return {"probe": probe.as_dict(), "added_p50_ms": round(added, 1), "took_effect": added >= 0.7 * self.delay_ms}
