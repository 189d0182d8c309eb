#!/usr/bin/env python3
"""Regenerates crates/wire/src/requests/*.rs, the request shapes the bounds walker reads.

The shapes are facts of the Kafka wire format (field order, types, versions, tagged fields).
They are read here from the decoders of the kafka-protocol crate Shoal depends on, so that the
walker reads a body exactly as that decoder will; crates/wire/tests/schema.rs then checks every
generated shape against the decoder (generated bodies must decode and be consumed completely).
Run it after upgrading kafka-protocol or advertising new versions:

    python3 scripts/gen-wire-schemas.py && cargo fmt -p shoal-wire

It reads the advertised ranges from crates/broker/src/handlers/api_versions.rs and the crate's
sources from ~/.cargo/registry (build once so they are there).
"""
import glob
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FAMILIES = {
    "produce_fetch": ("Produce, Fetch, ListOffsets, Metadata, OffsetForLeaderEpoch, "
                      "DescribeTopicPartitions and DeleteRecords",
                      ["Produce", "Fetch", "ListOffsets", "Metadata", "OffsetForLeaderEpoch",
                       "DescribeTopicPartitions", "DeleteRecords"]),
    "groups": ("the classic and KIP-848 consumer group APIs and committed offsets",
               ["OffsetCommit", "OffsetFetch", "FindCoordinator", "JoinGroup", "Heartbeat",
                "LeaveGroup", "SyncGroup", "DescribeGroups", "ListGroups", "DeleteGroups",
                "OffsetDelete", "ConsumerGroupHeartbeat", "ConsumerGroupDescribe"]),
    "share": ("share groups (KIP-932)",
              ["ShareGroupHeartbeat", "ShareGroupDescribe", "ShareFetch", "ShareAcknowledge",
               "DescribeShareGroupOffsets", "AlterShareGroupOffsets", "DeleteShareGroupOffsets"]),
    "txn": ("idempotent producers and transactions (KIP-98, KIP-664)",
            ["InitProducerId", "AddPartitionsToTxn", "AddOffsetsToTxn", "EndTxn",
             "TxnOffsetCommit", "DescribeProducers", "DescribeTransactions", "ListTransactions",
             "WriteTxnMarkers"]),
    "security": ("ApiVersions, SASL, SCRAM credentials, ACLs and client quotas",
                 ["ApiVersions", "SaslHandshake", "SaslAuthenticate",
                  "DescribeUserScramCredentials", "AlterUserScramCredentials", "DescribeAcls",
                  "CreateAcls", "DeleteAcls", "DescribeClientQuotas", "AlterClientQuotas"]),
    "admin": ("topic, config, partition and cluster administration",
              ["CreateTopics", "DeleteTopics", "DescribeConfigs", "AlterConfigs",
               "AlterReplicaLogDirs", "DescribeLogDirs", "ElectLeaders",
               "AlterPartitionReassignments", "ListPartitionReassignments", "CreatePartitions",
               "DescribeCluster", "IncrementalAlterConfigs"]),
}

PRIM = {"Boolean": "Bool", "Int8": "I8", "Int16": "I16", "UInt16": "U16", "Int32": "I32",
        "Int64": "I64", "Float64": "F64", "Uuid": "Uuid"}


def snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def block(s, i):
    """s[i] == '{': returns (inner, index after the matching '}')."""
    depth = 0
    for j in range(i, len(s)):
        if s[j] == "{":
            depth += 1
        elif s[j] == "}":
            depth -= 1
            if depth == 0:
                return s[i + 1:j], j + 1
    raise ValueError("unbalanced")


def split_statements(body):
    out, depth, start = [], 0, 0
    for j, c in enumerate(body):
        if c in "{([":
            depth += 1
        elif c in "})]":
            depth -= 1
            if depth == 0 and c == "}" and body[start:j].lstrip().startswith(("if ", "for ", "match ")):
                pass
        elif c == ";" and depth == 0:
            out.append(body[start:j].strip())
            start = j + 1
    rest = body[start:].strip()
    if rest:
        out.append(rest)
    return out


def cond_true(cond, v):
    py = cond.replace("&&", " and ").replace("||", " or ").replace("version", str(v))
    if not re.fullmatch(r"[\d\s<>=!()andor-]+", py):
        raise ValueError(f"condition {cond!r}")
    return eval(py)


def evaluate(expr, v):
    """The decode call `expr` makes at version v: its type text, or None (not read), or 'BAIL'."""
    expr = expr.strip()
    if expr.startswith("if "):
        k = expr.index("{")
        cond = expr[3:k]
        inner, after = block(expr, k)
        rest = expr[after:].strip()
        if cond_true(cond, v):
            return evaluate(inner, v)
        if rest.startswith("else"):
            rest = rest[4:].strip()
            if rest.startswith("if "):
                return evaluate(rest, v)
            inner2, _ = block(rest, 0)
            return evaluate(inner2, v)
        return None
    if expr.startswith("bail!"):
        return "BAIL"
    m = re.search(r"(?:^|=\s*)(types::.*)\.decode\(buf\)\?", expr, re.S)
    if m:
        return m.group(1).strip()
    if ".decode(buf)" in expr:
        raise ValueError(f"unparsed decode {expr!r}")
    return None


class Messages:
    def __init__(self, src):
        self.src = src
        self.structs = {}
        for m in re.finditer(r"pub struct (\w+) \{", src):
            inner, _ = block(src, m.end() - 1)
            self.structs[m.group(1)] = dict(re.findall(r"pub (\w+): ([^\n]+),\n", inner))
        self.decoders = {}
        for m in re.finditer(r"impl Decodable for (\w+) \{", src):
            inner, _ = block(src, m.end() - 1)
            k = inner.index("{", inner.index("fn decode"))
            body, _ = block(inner, k)
            self.decoders[m.group(1)] = body


def elem_struct(decl):
    decl = decl.strip()
    for pre in ("Option<", "Vec<"):
        while decl.startswith(pre):
            decl = decl[len(pre):-1].strip()
    return decl.split("::")[-1]


class Gen:
    def __init__(self, api, req_const, msgs):
        self.api = api
        self.req_const = req_const
        self.msgs = msgs
        self.consts = []  # (name, text), dependency order
        self.done = {}

    def typ(self, text, decl, v, flex):
        text = text.strip()
        m = re.fullmatch(r"types::(\w+)(.*)", text, re.S)
        name, rest = m.group(1), m.group(2).strip()
        compact = name.startswith("Compact")
        if name in PRIM:
            return f"T::{PRIM[name]}"
        if name in ("String", "CompactString", "Bytes", "CompactBytes"):
            if compact != flex:
                raise ValueError(f"{text} at flexible={flex}")
            return "T::Str" if "String" in name else "T::Bytes"
        if name in ("Array", "CompactArray"):
            if compact != flex:
                raise ValueError(f"{text} at flexible={flex}")
            inner = rest[1:-1]
            return f"T::Array(&{self.typ(inner, decl, v, flex)})"
        if name in ("Struct", "OptionStruct"):
            s = elem_struct(decl)
            c = self.struct(s)
            return f"T::{'Struct' if name == 'Struct' else 'OptStruct'}({c})"
        raise ValueError(f"type {text}")

    def struct(self, sname):
        if sname in self.done:
            return self.done[sname]
        short = sname[len(self.api + "Request"):] if sname.startswith(self.api + "Request") else sname
        cname = f"{self.req_const}_{snake(short).upper()}" if short else f"{self.req_const}_FIELDS"
        self.done[sname] = cname
        fields = self.fields(sname)
        self.consts.append((cname, sname, fields))
        return cname

    def fields(self, sname):
        body = self.msgs.decoders[sname]
        decls = self.msgs.structs[sname]
        m = re.search(r"if version < (\d+) \|\| version > (\d+) \{", body)
        if m:
            vmin, vmax = int(m.group(1)), int(m.group(2))
        else:
            m = re.search(r"if version != (\d+) \{", body)
            vmin = vmax = int(m.group(1))
        fm = re.search(r"if version >= (\d+) \{\s*let num_tagged_fields", body)
        flex_from = int(fm.group(1)) if fm else (0 if "num_tagged_fields" in body else 10**6)
        self.flex_from = flex_from
        self.vmax = vmax
        out = []
        stmts = split_statements(body[body.index("}", m.end()) + 1:])
        for st in stmts:
            lm = re.match(r"let (mut )?(\w+)(?::[^=]+)? = (.*)", st, re.S)
            if not lm:
                continue
            fname, expr = lm.group(2), lm.group(3)
            if fname in ("unknown_tagged_fields",) or fname not in decls:
                continue
            if ".decode(buf)" not in expr:
                continue  # a tagged field's default
            out += self.ranges(expr, decls[fname], vmin, vmax, flex_from, None)
        # tagged fields
        tm = re.search(r"match tag \{", body)
        if tm:
            arms, _ = block(body, tm.end() - 1)
            for am in re.finditer(r"(\d+) => \{", arms):
                inner, _ = block(arms, am.end() - 1)
                tag = int(am.group(1))
                fname = re.search(r"(\w+) = types::", inner).group(1)
                out += self.ranges(inner, decls[fname], vmin, vmax, flex_from, tag)
        return out

    def ranges(self, expr, decl, vmin, vmax, flex_from, tag):
        per = []
        for v in range(0, vmax + 1):
            if v < vmin or (tag is not None and v < flex_from):
                per.append(None)
                continue
            t = evaluate(expr, v)
            if t == "BAIL" or t is None:
                per.append(None)
            else:
                per.append(self.typ(t, decl, v, v >= flex_from))
        out, v = [], 0
        while v <= vmax:
            if per[v] is None:
                v += 1
                continue
            lo = v
            while v + 1 <= vmax and per[v + 1] == per[lo]:
                v += 1
            hi = "MAX" if v == vmax else str(v)
            if tag is None:
                out.append(f"f({lo}, {hi}, {per[lo]})")
            else:
                out.append(f"tagged({lo}, {hi}, {tag}, {per[lo]})")
            v += 1
        return out


def main():
    reg = glob.glob(os.path.expanduser("~/.cargo/registry/src/*/kafka-protocol-0.18.0/src/messages"))
    if not reg:
        sys.exit("kafka-protocol-0.18.0 is not in ~/.cargo/registry: build the workspace first")
    mdir = reg[0]
    av = open(os.path.join(ROOT, "crates/broker/src/handlers/api_versions.rs")).read()
    supported = {m[0]: (int(m[1]), int(m[2])) for m in
                 re.findall(r"\(ApiKey::(\w+), (\d+), (\d+)\)", av)}
    keys_src = open(os.path.join(os.path.dirname(mdir), "messages.rs")).read()
    listed = [a for _, (_, apis) in FAMILIES.items() for a in apis]
    missing = set(supported) - set(listed)
    if missing:
        sys.exit(f"advertised but in no family: {sorted(missing)}")
    for fam, (what, apis) in FAMILIES.items():
        lines = [f"//! Request shapes for {what}.",
                 "//! Generated by scripts/gen-wire-schemas.py from the decoders of kafka-protocol 0.18",
                 "//! (Kafka's `*Request.json` message specs); do not edit by hand.",
                 "#[allow(unused_imports)]",
                 "use crate::schema::{f, tagged, Request, F, MAX, T};", ""]
        statics = []
        for api in apis:
            if api not in supported:
                continue
            lo, hi = supported[api]
            key = int(re.search(rf"\n\s*{api} = (\d+),", keys_src).group(1))
            src = open(os.path.join(mdir, f"{snake(api)}_request.rs")).read()
            msgs = Messages(src)
            const = snake(api).upper()
            g = Gen(api, const, msgs)
            top = g.struct(f"{api}Request")
            body = msgs.decoders[f"{api}Request"]
            fm = re.search(r"if version >= (\d+) \{\s*let num_tagged_fields", body)
            flex = fm.group(1) if fm else ("0" if "num_tagged_fields" in body else "MAX")
            dm = re.search(r"if version < (\d+) \|\| version > \d+ \{", body)
            if dm and int(dm.group(1)) > lo:
                lo = int(dm.group(1))  # e.g. Produce v0-2: advertised, refused before decoding
            for cname, sname, fields in g.consts:
                lines.append(f"/// `{sname}`.")
                lines.append(f"const {cname}: &[F] = &[{', '.join(fields)}];")
                lines.append("")
            lines.append(f"/// {api} v{lo}-{hi} (API key {key}).")
            lines.append(f"pub static {const}: Request = Request {{ api_key: {key}, min: {lo}, "
                         f"max: {hi}, flexible_from: {flex}, fields: {top} }};")
            lines.append("")
            statics.append(const)
        lines.append("/// This family's requests.")
        lines.append(f"pub static ALL: &[&Request] = &[{', '.join('&' + s for s in statics)}];")
        open(os.path.join(ROOT, f"crates/wire/src/requests/{fam}.rs"), "w").write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
