"""Reads `ember export --format parquet` output with readers we did not
write (pyarrow and DuckDB) and checks it against ember's own answers:

- row counts of items.parquet, neighbours.parquet and events.parquet;
- every vector bit for bit against `ember export --vectors x.fvecs`;
- a DuckDB query over neighbours.parquet gives the same top-N as
  `ember knn --item ID --json`, for several items;
- the Milvus layout (`--milvus`) has exactly the fields item_id and vector.

Usage: python3 scripts/check_parquet.py EMBER_BINARY WORK_DIR
"""

import json
import random
import struct
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

DIM = 16
ITEMS = 2_000
TOP = 10


def ember(binary, *args):
    done = subprocess.run([binary, *map(str, args)], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"ember {' '.join(map(str, args))} failed:\n{done.stderr}")
    return done.stdout


def read_fvecs(path):
    data = Path(path).read_bytes()
    rows, at = [], 0
    while at < len(data):
        (dim,) = struct.unpack_from("<i", data, at)
        rows.append(data[at + 4 : at + 4 + 4 * dim])
        at += 4 + 4 * dim
    return rows


def main():
    binary, work = sys.argv[1], Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    vectors = work / "vectors.csv"
    with vectors.open("w") as f:
        for i in range(ITEMS):
            f.write(",".join([str(i)] + [f"{rng.gauss(0, 1):.6f}" for _ in range(DIM)]) + "\n")
    store = work / "store"
    ember(binary, "ingest", store, vectors, "--vectors", "--dim", DIM)
    events = work / "events.csv"
    with events.open("w") as f:
        for n in range(5_000):
            f.write(f"{n % 97},{rng.randrange(ITEMS)},{1000 + n}\n")
    ember(binary, "ingest", store, events)
    out = work / "parquet"
    ember(binary, "export", store, "--format", "parquet", "--out", out, "--top", TOP)
    ember(binary, "export", store, "--vectors", work / "v.fvecs")

    items = pq.read_table(out / "items.parquet")
    assert items.num_rows == ITEMS, items.num_rows
    fvecs = read_fvecs(work / "v.fvecs")
    ids = [int(x) for x in (work / "v.fvecs.ids").read_text().split()]
    by_id = dict(zip(ids, fvecs))
    for item_id, vector in zip(items.column("item_id").to_pylist(), items.column("vector").to_pylist()):
        packed = struct.pack(f"<{len(vector)}f", *vector)
        assert packed == by_id[item_id], f"vector of item {item_id} differs"

    neighbours = pq.read_table(out / "neighbours.parquet")
    assert neighbours.num_rows == ITEMS * TOP, neighbours.num_rows
    events_rows = pq.read_table(out / "events.parquet").num_rows
    assert events_rows == 5_000, events_rows

    con = duckdb.connect()
    for item in [0, 1, 17, 999, ITEMS - 1]:
        got = [
            row[0]
            for row in con.execute(
                f"SELECT neighbour_id FROM read_parquet('{out / 'neighbours.parquet'}') "
                f"WHERE item_id = {item} ORDER BY rank"
            ).fetchall()
        ]
        want = [hit["id"] for hit in json.loads(ember(binary, "knn", store, "--item", item, "-k", TOP, "--json"))]
        assert got == want, f"item {item}: DuckDB {got} vs ember knn {want}"
    per_user = con.execute(
        f"SELECT count(DISTINCT user_id) FROM read_parquet('{out / 'events.parquet'}')"
    ).fetchone()[0]
    assert per_user == 97, per_user

    milvus = work / "milvus"
    ember(binary, "export", store, "--format", "parquet", "--out", milvus, "--milvus", "--top", 0)
    names = pq.read_schema(milvus / "items.parquet").names
    assert names == ["item_id", "vector"], names
    print(
        f"parquet check: {ITEMS} items bit for bit, {ITEMS * TOP} neighbour rows, "
        f"DuckDB top-{TOP} equal to ember knn, 5000 events, Milvus layout {names}"
    )


if __name__ == "__main__":
    main()
