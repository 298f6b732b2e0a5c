#!/usr/bin/env python3
"""Turn transactions PostgreSQL logged (log_statement = 'all') into pgbench scripts.

`make bench` uses this for S3's baseline (scripts/bench.sh, docs/BENCHMARKS-HOWTO.md): the
server makes real purchases while PostgreSQL logs every statement; each transaction that
contains the marker (`INSERT INTO "purchases"`) becomes one pgbench script holding the
very statements feria sent, in order, with the parameters it bound. pgbench replays them
on a copy of the database taken before those purchases, ending in ROLLBACK instead of
COMMIT so that a transaction can be replayed again and again (the same rows locked,
written and indexed each time). The baseline therefore leaves out the commit's WAL flush:
it is an upper bound of what the database does for this transaction, so feria's ratio to
it errs low.

Parameters are bound, not spliced into the SQL, so that `-M prepared` prepares the same
statements feria prepares: one `SELECT ... \\gset` first sets them as pgbench variables
(hex-encoded, because pgbench reads `:name` anywhere in a statement's text, even inside a
string literal), which costs one extra short round trip per transaction.

Reads the log on standard input; lines of other databases are ignored. Prints how many
scripts it wrote.
"""

import argparse
import os
import re
import sys

# Debian's log_line_prefix: '%m [%p] %q%u@%d '.
LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? \S+ \[(\d+)\] (\S*)@(\S*) ([A-Z]+):  (.*)$"
)
EXECUTE = re.compile(r"^(?:execute [^:]*|statement): (.*)$", re.S)
PARAMETER = re.compile(r"\$(\d+) = (NULL|'(?:[^']|'')*')")
PLACEHOLDER = re.compile(r"\$(\d+)")


def records(lines, database):
    """(pid, level, message) of the database's log records, continuation lines joined."""
    current = None
    for raw in lines:
        line = raw.rstrip("\n")
        match = LINE.match(line)
        if match:
            if current:
                yield current
            pid, _user, db, level, message = match.groups()
            current = (pid, level, message) if db == database else None
        elif current and line.startswith("\t"):
            current = (current[0], current[1], current[2] + "\n" + line[1:])
    if current:
        yield current


def statements(lines, database):
    """Per backend, its statements in order: (sql, {n: literal or None})."""
    by_pid = {}
    for pid, level, message in records(lines, database):
        if level == "LOG":
            match = EXECUTE.match(message)
            if match:
                by_pid.setdefault(pid, []).append([match.group(1), {}])
        elif level == "DETAIL" and message.startswith("parameters: ") and by_pid.get(pid):
            params = {}
            for n, value in PARAMETER.findall(message):
                params[int(n)] = None if value == "NULL" else value[1:-1].replace("''", "'")
            by_pid[pid][-1][1] = params
    return by_pid


def transactions(by_pid, marker):
    """The BEGIN ... COMMIT blocks that contain the marker."""
    found = []
    for stmts in by_pid.values():
        block = None
        for sql, params in stmts:
            head = sql.strip().upper()
            if head == "BEGIN" or head.startswith("BEGIN "):
                block = []
            if block is not None:
                block.append((sql, params))
            if head == "COMMIT" and block is not None:
                if any(marker in s for s, _ in block):
                    found.append(block)
                block = None
    return found


def script(block):
    """A pgbench script replaying one transaction, rolled back at the end."""
    values = []
    body = []
    for i, (sql, params) in enumerate(block):
        def bind(match, i=i, params=params):
            n = int(match.group(1))
            if n not in params:
                raise ValueError(f"statement {i} has no value for ${n}: {sql[:80]}")
            if params[n] is None:
                return "NULL"
            name = f"s{i}p{n}"
            values.append((name, params[n]))
            return f":{name}"

        text = PLACEHOLDER.sub(bind, sql.strip())
        if text.upper() == "COMMIT":
            text = "ROLLBACK"
        body.append(text.rstrip(";") + ";")
    head = []
    if values:
        columns = ", ".join(
            f"convert_from(decode('{value.encode().hex()}', 'hex'), 'UTF8') AS {name}"
            for name, value in values
        )
        head.append(f"SELECT {columns}\n\\gset")
    return "\n".join(head + body) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True)
    parser.add_argument("--marker", required=True, help="text a wanted transaction contains")
    parser.add_argument("--out", required=True, help="directory for replay-N.sql")
    args = parser.parse_args()
    blocks = transactions(statements(sys.stdin, args.database), args.marker)
    os.makedirs(args.out, exist_ok=True)
    for n, block in enumerate(blocks, 1):
        with open(os.path.join(args.out, f"replay-{n}.sql"), "w") as out:
            out.write(script(block))
    print(len(blocks))


if __name__ == "__main__":
    main()
