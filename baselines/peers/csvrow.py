"""csvrow.py: one chela-bench results row (schema 2), formatted as harness/csv.c does.

COLUMNS is the one list the header and every row come from, in harness/csv.c's COLS
order (test_peers.py checks it against that table and the literal header).  A row is
a dict from column name to value: a str for text columns, a number (or None / NaN:
"not measured", an empty cell) for numeric ones.  Numbers print as %.6g, integers
exactly; text cells never hold a separator (',' becomes ';', line breaks and quotes
spaces).  Pure Python: no torch.
"""

import math

SCHEMA = 2

# (name, kind): "s" text, "n" number; harness/csv.c COLS, S()/S2() text, N()/N2() numbers.
COLUMNS = (
    ("schema", "n"), ("git_sha", "s"), ("device", "s"), ("sm_clock_mhz", "n"), ("backend", "s"),
    ("op", "s"), ("variant", "s"), ("role", "s"), ("dtype", "s"),
    ("batch", "n"), ("seq", "n"), ("heads", "n"), ("dk", "n"), ("dv", "n"), ("dim", "n"),
    ("samples", "n"), ("median_ms", "n"), ("p10_ms", "n"), ("p90_ms", "n"), ("min_ms", "n"),
    ("stdrel", "n"),
    ("flops", "n"), ("ideal_bytes", "n"), ("tflops", "n"), ("gbps", "n"), ("floor_ms", "n"),
    ("floor_ratio", "n"),
    ("hbm_read_bytes", "n"), ("hbm_write_bytes", "n"), ("hbm_ratio", "n"),
    ("max_abs_err", "n"), ("max_rel_err", "n"),
    ("status", "s"), ("note", "s"),
    ("causal", "n"), ("pass", "s"), ("config", "s"), ("peak_mem_bytes", "n"), ("build", "s"),
)
NAMES = tuple(name for name, _ in COLUMNS)
KIND = dict(COLUMNS)

# The reader's text cell sizes (csv.h csv_row_t, NUL included): longer text is cut on
# read, so it is cut here first, where it can be cut at a word.
TEXT_MAX = {"git_sha": 48, "device": 96, "backend": 8, "op": 32, "variant": 64, "role": 16,
            "dtype": 8, "status": 96, "note": 256, "pass": 8, "config": 256, "build": 160}


def header():
    return ",".join(NAMES)


def new_row(**cells):
    """A row with every number not measured and every text empty, causal 1, pass fwd
    (csv_row_init), schema 2, then the given cells."""
    row = {name: ("" if kind == "s" else None) for name, kind in COLUMNS}
    row["schema"] = SCHEMA
    row["causal"] = 1
    row["pass"] = "fwd"
    for k, v in cells.items():
        if k not in KIND:
            raise KeyError("no column %r in schema %d" % (k, SCHEMA))
        row[k] = v
    return row


def format_num(v):
    """put_num: empty for not measured, inf/-inf, integers exact, else %.6g."""
    if v is None:
        return ""
    v = float(v)
    if math.isnan(v):
        return ""
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == math.floor(v) and abs(v) < 1e15:
        return "%.0f" % v
    return "%.6g" % v


def format_text(s, limit=None):
    """put_str: ',' -> ';', line breaks and '"' -> ' ', cut to what the reader keeps."""
    out = "".join(";" if c == "," else " " if c in "\n\r\"" else c for c in str(s))
    if limit is not None and len(out.encode()) > limit - 1:
        out = out.encode()[: limit - 1].decode(errors="ignore")
    return out


def format_row(row):
    cells = []
    for name, kind in COLUMNS:
        v = row.get(name)
        if name == "schema":
            cells.append("%d" % SCHEMA)
        elif kind == "s":
            cells.append(format_text("" if v is None else v, TEXT_MAX.get(name)))
        else:
            cells.append(format_num(v))
    return ",".join(cells)


def derive(row, copy_gbps=None, gemm_tflops=None):
    """row_emit's derived cells for a timed row: tflops, gbps and, where the ceilings
    were measured (copy GB/s, the GEMM rate of the row's dtype), floor_ms and
    floor_ratio = median / max(ideal_bytes / copy, flops / gemm)."""
    med = row.get("median_ms")
    if med is None or math.isnan(med):
        return row
    row["tflops"] = row["flops"] / med / 1e9
    row["gbps"] = row["ideal_bytes"] / med / 1e6
    if copy_gbps and gemm_tflops:
        bytes_ms = row["ideal_bytes"] / (copy_gbps * 1e6)
        flops_ms = row["flops"] / (gemm_tflops * 1e9)
        row["floor_ms"] = max(bytes_ms, flops_ms)
        row["floor_ratio"] = med / row["floor_ms"]
    return row
