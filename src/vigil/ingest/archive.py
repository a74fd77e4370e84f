"""The embedded metrics archive: Parquet files partitioned by UTC hour, with series labels kept.

Layout under ``$VIGIL_HOME/archive``::

    date=2026-11-26/hour=10/part-<start_ms>-<end_ms>.parquet     one per collection window
    date=2026-11-26/hour=10/compact-<start_ms>-<end_ms>.parquet  an hour's parts merged once closed

The file names are the archive's only bookkeeping: the newest ``end_ms`` is where collection
resumes, so there is no separate state file that a crash could leave out of step with the data.
Every file is written to a hidden temporary name and renamed into place (atomic on POSIX), windows
never straddle an hour, and compaction writes the merged file before deleting its inputs; a part
whose window lies inside a compact file's window is a crash leftover and is ignored by readers.

Rows are long-format ``timestamp`` (ms, UTC), ``metric``, ``labels`` (sorted JSON without
``__name__``), ``instance``, ``job``, ``value`` (float64, NaN kept).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vigil.errors import BadRequest, DataError
from vigil.ingest.samples import window_samples
from vigil.prometheus import RangeSeries
from vigil.promql import Matcher
from vigil.statefile import READ, REFUSE, FormatCheck

HOUR_MS = 3_600_000
_T = TypeVar("_T")
_FILE = re.compile(r"(part|compact)-(\d+)-(\d+)\.parquet\Z")
_SCHEMA = pa.schema(
    [
        ("timestamp", pa.timestamp("ms", tz="UTC")),
        ("metric", pa.string()),
        ("labels", pa.string()),
        ("instance", pa.string()),
        ("job", pa.string()),
        ("value", pa.float64()),
    ]
)
_STRING_COLUMNS = ("metric", "labels", "instance", "job")
_DICT_SCHEMA = pa.schema(
    [pa.field(f.name, pa.dictionary(pa.int32(), pa.string())) if f.name in _STRING_COLUMNS else f for f in _SCHEMA]
)
_MERGE_BATCH_ROWS = 2_000_000
_META_SERIES = b"vigil.series"
_META_SPAN = b"vigil.span_ms"  # [first, last] sample timestamp, absent for empty files
# Format 1 is _SCHEMA; files written before the footer named it carry no format key and the same schema.
FORMAT = 1
_META_FORMAT = b"vigil.format"
_FORMAT_TAG = str(FORMAT).encode()


def labels_json(labels: dict[str, str]) -> str:
    """Canonical text of a series' labels without its name: the archive's series identity."""
    return json.dumps({k: labels[k] for k in sorted(labels) if k != "__name__"}, separators=(",", ":"))


@dataclass(frozen=True)
class ArchiveFile:
    path: Path
    kind: str  # "part" or "compact"
    start_ms: int
    end_ms: int  # inclusive: the last step this file covers


@dataclass(frozen=True)
class ArchiveStats:
    series: int
    samples: int
    start: datetime | None
    end: datetime | None
    bytes: int
    files: int

    def to_dict(self) -> dict[str, object]:
        return {
            "series": self.series,
            "samples": self.samples,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "bytes": self.bytes,
            "files": self.files,
        }


class Archive:
    """Append-only Parquet archive of Prometheus range-query results.

    >>> arc = Archive(tmp_dir)                                            # doctest: +SKIP
    >>> arc.write_window(series, start_ms, end_ms)                        # doctest: +SKIP
    >>> arc.read(start, end, [("__name__", "=", "node_load1")])           # doctest: +SKIP
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        # Footers of immutable files never change: cache them so stats stay cheap on big archives.
        self._footer_cache: dict[Path, tuple[int, int, frozenset[str], tuple[int, int] | None]] = {}
        # Hour folders by their mtime (it changes whenever a file is added, renamed or removed):
        # folders known to hold no part, and each folder's bytes. A collector calls compact() and
        # size_bytes() every cycle; without these both would re-list weeks of hours each time.
        self._settled_hours: dict[Path, int] = {}
        self._hour_bytes: dict[Path, tuple[int, int]] = {}

    # -- discovery ----------------------------------------------------------------------------
    def files(self, start_ms: int | None = None, end_ms: int | None = None) -> list[ArchiveFile]:
        """Live data files overlapping ``[start_ms, end_ms]``, oldest first, crash leftovers dropped."""
        if not self.root.is_dir():
            return []
        out: list[ArchiveFile] = []
        for hour_dir in self._hour_dirs():
            hour_ms = _hour_of_dir(hour_dir)
            if start_ms is not None and hour_ms + HOUR_MS <= start_ms:
                continue
            if end_ms is not None and hour_ms > end_ms:
                continue
            out.extend(_live_files(hour_dir))
        return [
            f for f in out if (start_ms is None or f.end_ms >= start_ms) and (end_ms is None or f.start_ms <= end_ms)
        ]

    def last_end_ms(self) -> int | None:
        """The last archived step, or None for an empty archive (scans only the newest hour)."""
        for hour_dir in reversed(self._hour_dirs()):
            files = _live_files(hour_dir)
            if files:
                return max(f.end_ms for f in files)
        return None

    def _hour_dirs(self) -> list[Path]:
        return sorted(p for p in self.root.glob("date=*/hour=*") if p.is_dir())

    # -- writing ------------------------------------------------------------------------------
    def write_window(self, series: Sequence[RangeSeries], start_ms: int, end_ms: int) -> int:
        """Store one collection window ``[start_ms, end_ms]`` (within one UTC hour); returns rows.

        A window with no samples is still written (as an empty file) so that progress survives
        a restart and the next collection does not re-query it.
        """
        if start_ms // HOUR_MS != end_ms // HOUR_MS:
            raise BadRequest(f"window {start_ms}-{end_ms} straddles an hour; split it at the hour")
        table = series_to_table(series, start_ms, end_ms)
        path = _hour_dir(self.root, start_ms) / f"part-{start_ms}-{end_ms}.parquet"
        _write_atomic(table, path)
        return table.num_rows

    def compact(self, before_ms: int, *, open_parts: int = 12) -> int:
        """Merge small parts to keep the number of files (and per-file overhead) small; returns merges done.

        In the hour still being written, every ``open_parts`` parts become one file; an hour that
        ends before ``before_ms`` has its remaining parts merged. Merged files are not merged again:
        rewriting a whole closed hour (~9 M samples of the local stack) cost a 1.35 s burst of CPU at
        every hour boundary, well above the collection bursts the host's own model had learned.
        """
        done = 0
        for hour_dir in self._hour_dirs():
            mtime = _mtime_ns(hour_dir)
            if self._settled_hours.get(hour_dir) == mtime:
                continue
            closed = _hour_of_dir(hour_dir) + HOUR_MS <= before_ms
            parts = [f for f in _live_files(hour_dir) if f.kind == "part"]
            if parts and (closed or len(parts) >= open_parts):
                self._merge(hour_dir, parts)
                done += 1
                parts = []
            if closed and not parts:
                self._settled_hours[hour_dir] = _mtime_ns(hour_dir)
        return done

    def _merge(self, hour_dir: Path, files: list[ArchiveFile]) -> None:
        # Streamed in bounded batches with strings kept dictionary-encoded, so memory stays small
        # however many series an hour holds. Rows stay in collection order: each step repeats
        # the same series sequence, which zstd and run-length encoding compress better than a sort.
        start, end = min(f.start_ms for f in files), max(f.end_ms for f in files)
        series: set[str] = set()
        spans = []
        for f in files:
            footer = pq.read_metadata(f.path)
            kv = footer.metadata or {}
            series.update(json.loads(kv.get(_META_SERIES, b"[]")))
            if _META_SPAN in kv:
                spans.append(json.loads(kv[_META_SPAN]))
            elif footer.num_rows:
                spans.append([f.start_ms, f.end_ms])
        meta = {_META_FORMAT: _FORMAT_TAG, _META_SERIES: json.dumps(sorted(series)).encode()}
        if spans:
            meta[_META_SPAN] = json.dumps([min(a for a, _ in spans), max(b for _, b in spans)]).encode()
        schema = _DICT_SCHEMA.with_metadata(meta)
        target = hour_dir / f"compact-{start}-{end}.parquet"
        fd, tmp = tempfile.mkstemp(dir=hour_dir, prefix=".tmp-", suffix=".parquet")
        os.close(fd)
        try:
            with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
                batch: list[pa.Table] = []
                rows = 0
                for f in files:
                    table = pq.read_table(f.path, read_dictionary=list(_STRING_COLUMNS)).cast(_DICT_SCHEMA)
                    batch.append(table)
                    rows += table.num_rows
                    if rows >= _MERGE_BATCH_ROWS:
                        writer.write_table(pa.concat_tables(batch).unify_dictionaries().replace_schema_metadata(meta))
                        batch, rows = [], 0
                if batch:
                    writer.write_table(pa.concat_tables(batch).unify_dictionaries().replace_schema_metadata(meta))
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        for f in files:
            if f.path != target:
                f.path.unlink(missing_ok=True)
                self._footer_cache.pop(f.path, None)
        self._footer_cache.pop(target, None)

    def apply_retention(self, retention_s: float, now_s: float | None = None) -> int:
        """Delete whole hours older than ``retention_s``; returns hours deleted."""
        cutoff_ms = int(((now_s if now_s is not None else time.time()) - retention_s) * 1000)
        removed = 0
        for hour_dir in self._hour_dirs():
            if _hour_of_dir(hour_dir) + HOUR_MS > cutoff_ms:
                break
            shutil.rmtree(hour_dir, ignore_errors=True)
            self._settled_hours.pop(hour_dir, None)
            self._hour_bytes.pop(hour_dir, None)
            removed += 1
            date_dir = hour_dir.parent
            if not any(date_dir.iterdir()):
                date_dir.rmdir()
        return removed

    def clean_temp(self) -> None:
        """Remove temporary files a crashed writer left behind."""
        for tmp in self.root.glob("date=*/hour=*/.tmp-*"):
            tmp.unlink(missing_ok=True)

    # -- reading ------------------------------------------------------------------------------
    def read(
        self,
        start: float | datetime | pd.Timestamp | None = None,
        end: float | datetime | pd.Timestamp | None = None,
        matchers: Sequence[Matcher] | str = (),
    ) -> pd.DataFrame:
        """Long-format samples in ``[start, end]`` of the series the matchers select.

        ``matchers`` are ``(label, op, value)`` (``__name__`` for the metric) or a PromQL selector
        string such as ``node_load1{instance="host:9100"}``.
        """
        if isinstance(matchers, str):
            matchers = parse_selector(matchers)
        start_ms, end_ms = _to_ms(start), _to_ms(end)
        expr = None
        if start_ms is not None:
            expr = pc.field("timestamp") >= pa.scalar(start_ms, pa.timestamp("ms", tz="UTC"))
        if end_ms is not None:
            upper = pc.field("timestamp") <= pa.scalar(end_ms, pa.timestamp("ms", tz="UTC"))
            expr = upper if expr is None else expr & upper
        for pushed in _pushdown(matchers):
            expr = pushed if expr is None else expr & pushed
        tables = _read_listed(
            lambda: self.files(start_ms, end_ms),
            lambda files: [pq.read_table(f.path, schema=_SCHEMA, filters=expr) for f in files],
        )
        if not tables:
            return _SCHEMA.empty_table().to_pandas()
        table = pa.concat_tables(tables)
        if matchers and table.num_rows:
            table = table.filter(_match_mask(table, matchers))
        frame = table.to_pandas()
        return frame.sort_values(["metric", "labels", "timestamp"], kind="stable").reset_index(drop=True)

    def read_wide(
        self,
        start: float | datetime | pd.Timestamp | None = None,
        end: float | datetime | pd.Timestamp | None = None,
        matchers: Sequence[Matcher] | str = (),
    ) -> pd.DataFrame:
        """Samples as a DatetimeIndex x series frame; columns are ``metric{labels}`` strings."""
        long = self.read(start, end, matchers)
        if long.empty:
            return pd.DataFrame(index=pd.DatetimeIndex([], tz="UTC", name="timestamp"))
        long["series"] = long["metric"] + long["labels"]
        return long.pivot(index="timestamp", columns="series", values="value").sort_index()

    def size_bytes(self) -> int:
        """Bytes of all live data files; re-lists only the hour folders that changed."""
        total = 0
        for hour_dir in self._hour_dirs():
            mtime = _mtime_ns(hour_dir)
            cached = self._hour_bytes.get(hour_dir)
            if cached is None or cached[0] != mtime:
                cached = self._hour_bytes[hour_dir] = (mtime, sum(f.path.stat().st_size for f in _live_files(hour_dir)))
            total += cached[1]
        return total

    def stats(self) -> ArchiveStats:
        return _read_listed(self.files, self._stats)

    def _stats(self, files: list[ArchiveFile]) -> ArchiveStats:
        series: set[str] = set()
        samples = size = 0
        first: int | None = None
        last: int | None = None
        live = set()
        for f in files:
            live.add(f.path)
            cached = self._footer_cache.get(f.path)
            if cached is None:
                meta = pq.read_metadata(f.path)
                kv = meta.metadata or {}
                keys = frozenset(json.loads(kv.get(_META_SERIES, b"[]")))
                span = tuple(json.loads(kv[_META_SPAN])) if _META_SPAN in kv else None
                if span is None and meta.num_rows:  # written before spans were recorded
                    span = (f.start_ms, f.end_ms)
                cached = self._footer_cache[f.path] = (meta.num_rows, f.path.stat().st_size, keys, span)
            samples += cached[0]
            size += cached[1]
            series.update(cached[2])
            if cached[3] is not None:
                first = cached[3][0] if first is None else min(first, cached[3][0])
                last = cached[3][1] if last is None else max(last, cached[3][1])
        for gone in set(self._footer_cache) - live:
            self._footer_cache.pop(gone, None)
        # The span of actual samples: empty windows only record progress.
        return ArchiveStats(
            series=len(series),
            samples=samples,
            start=_dt(first),
            end=_dt(last),
            bytes=size,
            files=len(files),
        )


def series_to_table(series: Sequence[RangeSeries], start_ms: int, end_ms: int) -> pa.Table:
    """Rows of ``series`` inside ``[start_ms, end_ms]`` as an archive table."""
    window = window_samples(series, start_ms, end_ms)
    if not window.rows:
        table = _SCHEMA.empty_table()
    else:
        kept = [s for s, r in zip(series, window.row, strict=True) if r >= 0]
        idx = pa.array(window.index.astype(np.int32))

        def take(values: list[str]) -> pa.Array:
            return pa.array(values, pa.string()).take(idx)

        table = pa.table(
            {
                "timestamp": pa.array(window.ts_ms, pa.timestamp("ms", tz="UTC")),
                "metric": take([s.labels.get("__name__", "") for s in kept]),
                "labels": take([labels_json(s.labels) for s in kept]),
                "instance": take([s.labels.get("instance", "") for s in kept]),
                "job": take([s.labels.get("job", "") for s in kept]),
                "value": pa.array(window.values, pa.float64()),
            },
            schema=_SCHEMA,
        )
    return table.replace_schema_metadata(_table_meta(table))


_SELECTOR = re.compile(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*(?:\{(.*)\})?\s*\Z", re.S)
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|\Z)', re.S)


def parse_selector(text: str) -> list[Matcher]:
    """Parse a PromQL vector selector (``name{l="v",...}``) into matchers for :meth:`Archive.read`."""
    m = _SELECTOR.match(text)
    if not m or not (m.group(1) or m.group(2) is not None):
        raise BadRequest(f"not a vector selector: {text!r}")
    out: list[Matcher] = [("__name__", "=", m.group(1))] if m.group(1) else []
    body = (m.group(2) or "").strip()
    pos = 0
    while pos < len(body):
        mm = _MATCHER.match(body, pos)
        if not mm:
            raise BadRequest(f"cannot parse label matchers in {text!r} at {body[pos : pos + 20]!r}")
        out.append((mm.group(1), mm.group(2), _unescape(mm.group(3))))
        pos = mm.end()
    return out


_COLUMN_OF = {"__name__": "metric", "instance": "instance", "job": "job"}
_LITERAL_ALTERNATION = re.compile(r"(?:[a-zA-Z0-9_:]|\\\.)+(?:\|(?:[a-zA-Z0-9_:]|\\\.)+)*\Z")


def _pushdown(matchers: Sequence[Matcher]) -> list[pc.Expression]:
    """Scan filters for matchers on stored columns, so only matching rows are ever materialised.

    Equality, and regexes that are plain alternations of names (``a|b|c``, what the signal
    catalog asks for), become column filters; anything else is applied after the scan.
    """
    out = []
    for label, op, value in matchers:
        column = _COLUMN_OF.get(label)
        if column is None:
            continue
        if op == "=":
            out.append(pc.field(column) == value)
        elif op == "=~" and _LITERAL_ALTERNATION.match(value):
            out.append(pc.field(column).isin([v.replace("\\.", ".") for v in value.split("|")]))
    return out


def _unescape(value: str) -> str:
    return re.sub(r"\\(x[0-9a-fA-F]{2}|.)", _unescape_one, value, flags=re.S)


def _unescape_one(m: re.Match[str]) -> str:
    ch = m.group(1)
    if ch.startswith("x") and len(ch) == 3:
        return chr(int(ch[1:], 16))
    return {"n": "\n", "r": "\r", "t": "\t"}.get(ch, ch)


def _match_mask(table: pa.Table, matchers: Sequence[Matcher]) -> pa.Array:
    # Match on the few distinct series, then broadcast: parsing JSON per row would be far slower.
    keys = pc.binary_join_element_wise(table["metric"], table["labels"], "\x00")
    uniq = pc.unique(keys).to_pylist()
    chosen = []
    for key in uniq:
        metric, text = key.split("\x00", 1)
        labels = json.loads(text)
        labels["__name__"] = metric
        if all(_matches(labels.get(k, ""), op, v) for k, op, v in matchers):
            chosen.append(key)
    return pc.is_in(keys, value_set=pa.array(chosen, pa.string()))


def _matches(actual: str, op: str, expected: str) -> bool:
    if op == "=":
        return actual == expected
    if op == "!=":
        return actual != expected
    hit = re.fullmatch(expected, actual) is not None  # PromQL regexes are fully anchored
    return hit if op == "=~" else not hit


def _table_meta(table: pa.Table) -> dict[bytes, bytes]:
    if table.num_rows == 0:
        return {_META_FORMAT: _FORMAT_TAG, _META_SERIES: b"[]"}
    keys = pc.unique(pc.binary_join_element_wise(table["metric"], table["labels"], "")).to_pylist()
    span = pc.min_max(table["timestamp"].cast(pa.int64()))
    return {
        _META_FORMAT: _FORMAT_TAG,
        _META_SERIES: json.dumps(sorted(keys)).encode(),
        _META_SPAN: json.dumps([span["min"].as_py(), span["max"].as_py()]).encode(),
    }


def _write_atomic(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".parquet")
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd", use_dictionary=["metric", "labels", "instance", "job"])
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_LISTING_ATTEMPTS = 5


def _read_listed(listing: Callable[[], list[ArchiveFile]], read: Callable[[list[ArchiveFile]], _T]) -> _T:
    """``read(listing())``, listing again when a file vanished in between.

    A compaction (the collector's, in this process or another) writes the merged file before it
    deletes the parts it holds, so a fresh listing always finds every row again; the parts a reader
    listed a moment earlier may be gone by the time it opens them.
    """
    for _ in range(_LISTING_ATTEMPTS - 1):
        try:
            return read(listing())
        except FileNotFoundError:
            continue
    return read(listing())


def _live_files(hour_dir: Path) -> list[ArchiveFile]:
    files = []
    for p in hour_dir.iterdir():
        m = _FILE.match(p.name)
        if m:
            files.append(ArchiveFile(p, m.group(1), int(m.group(2)), int(m.group(3))))
    compacts = [f for f in files if f.kind == "compact"]
    live = [
        f
        for f in files
        if f.kind == "compact" or not any(c.start_ms <= f.start_ms and f.end_ms <= c.end_ms for c in compacts)
    ]
    # A newer compact supersedes an older one it contains (crash between write and delete).
    live = [
        f
        for f in live
        if f.kind == "part"
        or not any(c is not f and c.start_ms <= f.start_ms and f.end_ms <= c.end_ms for c in compacts)
    ]
    return sorted(live, key=lambda f: (f.start_ms, f.end_ms))


def _mtime_ns(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return -1


def _hour_dir(root: Path, ts_ms: int) -> Path:
    t = datetime.fromtimestamp(ts_ms // HOUR_MS * 3600, tz=UTC)
    return root / f"date={t:%Y-%m-%d}" / f"hour={t:%H}"


def _hour_of_dir(path: Path) -> int:
    date = path.parent.name.removeprefix("date=")
    hour = path.name.removeprefix("hour=")
    try:
        t = datetime.strptime(f"{date} {hour}", "%Y-%m-%d %H").replace(tzinfo=UTC)
    except ValueError:
        raise DataError(f"unexpected folder in the archive: {path}") from None
    return int(t.timestamp()) * 1000


def _to_ms(t: float | datetime | pd.Timestamp | None) -> int | None:
    if t is None:
        return None
    if isinstance(t, int | float):
        return int(round(float(t) * 1000))
    ts = pd.Timestamp(t)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value // 1_000_000)


def _dt(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def hour_windows(start_ms: int, end_ms: int, step_ms: int, chunk_ms: int) -> Iterable[tuple[int, int]]:
    """Split ``[start_ms, end_ms]`` (on the step grid) into windows within one hour and ``chunk_ms``."""
    if step_ms <= 0:
        raise BadRequest(f"step must be positive, got {step_ms} ms")
    chunk_ms = max(chunk_ms, step_ms)  # at least one step per window, or the loop would not advance
    lo = start_ms
    while lo <= end_ms:
        hour_end = (lo // HOUR_MS + 1) * HOUR_MS - 1
        hi = min(end_ms, hour_end, lo + chunk_ms - step_ms)
        hi = lo + (hi - lo) // step_ms * step_ms
        yield lo, hi
        lo = hi + step_ms


def check_archive(root: Path) -> list[FormatCheck]:
    """What this version does with the archive under ``root`` (``vigil upgrade-check``): one verdict per
    format found, and one per file it cannot read (every footer is read; no data is)."""
    by_format: dict[str, int] = {}
    refused: list[FormatCheck] = []
    for hour_dir in sorted(p for p in root.glob("date=*/hour=*") if p.is_dir()) if root.is_dir() else []:
        for f in _live_files(hour_dir):
            try:
                meta = pq.read_metadata(f.path)
                names = set(meta.schema.to_arrow_schema().names)
                found = (meta.metadata or {}).get(_META_FORMAT, b"").decode() or "none"
            except (OSError, pa.ArrowException) as exc:
                refused.append(FormatCheck("archive file", f.path, "unreadable", REFUSE, str(exc)))
                continue
            missing = sorted(set(_SCHEMA.names) - names)
            if missing or found not in ("none", str(FORMAT)):
                why = f"lacks columns {missing}" if missing else f"format {found}; this Vigil reads {FORMAT}"
                refused.append(FormatCheck("archive file", f.path, found, REFUSE, f"{why}: reading it fails"))
                continue
            by_format[found] = by_format.get(found, 0) + 1
    unnamed = " (written before files named their format; the same schema)"
    checks = [
        FormatCheck("archive", root, found, READ, f"{n} files" + (unnamed if found == "none" else ""))
        for found, n in sorted(by_format.items())
    ]
    return checks + refused
