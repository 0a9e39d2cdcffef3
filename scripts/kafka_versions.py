#!/usr/bin/env python3
"""Prints, per Kafka release, the API version ranges a broker of that release advertises,
read from the message JSON in Apache Kafka's git history (clients/src/main/resources/
common/message/*Request.json). Used once to generate broker/src/versions/kafka_*.rs; kept
so the tables can be checked or regenerated.

Usage: scripts/kafka_versions.py [--repo PATH] REF...   (e.g. 2.8.0 3.0.0 HEAD)
Output lines: <ref> <api_key> <name> <min> <max>
       scripts/kafka_versions.py [--repo PATH] --emit DIR
writes DIR/kafka_{2_8,3_0,3_6,3_9,4_0,4_1}.rs (see RELEASES and emit() for the sources).

Rules, as Kafka's ApiKeys/ApiVersionsResponse apply them:
- only request specs whose "listeners" include a broker ("zkBroker" or "broker"); specs
  without "listeners" (before 2.8) count as broker APIs;
- "latestVersionUnstable": true drops the latest version (not advertised by default).
"""
import json
import subprocess
import sys

MSG = "clients/src/main/resources/common/message/"


def git(repo, *args):
    return subprocess.run(["git", "--git-dir", repo, *args], check=True,
                          capture_output=True, text=True).stdout


def spec(repo, ref, path):
    text = git(repo, "show", f"{ref}:{path}")
    lines = [l for l in text.splitlines() if not l.strip().startswith("//")]
    # raw_decode: like Jackson, read the first JSON value and ignore what follows (2.8.0's
    # DescribeProducersRequest.json has stray closing brackets after it).
    return json.JSONDecoder().raw_decode("\n".join(lines).strip())[0]


def ranges(repo, ref, listeners_wanted=("zkBroker", "broker")):
    out = []
    for path in git(repo, "ls-tree", "--name-only", ref, MSG).split():
        if not path.endswith("Request.json"):
            continue
        s = spec(repo, ref, path)
        if s.get("type") != "request":
            continue
        listeners = s.get("listeners")
        if listeners is not None and not set(listeners_wanted) & set(listeners):
            continue
        lo, _, hi = s["validVersions"].partition("-")
        lo, hi = int(lo), int(hi or lo)
        if s.get("latestVersionUnstable"):
            hi -= 1
        if hi >= lo:
            out.append((s["apiKey"], s["name"].removesuffix("Request"), lo, hi))
    return sorted(out)


# Released versions whose tag is in the mirror; 3.9.0 has no tag there: its last release
# candidate, 3.9.0-rc3, has the same message JSON as the 3.9 branch head.
RELEASES = [("2.8", "2.8.0"), ("3.0", "3.0.0"), ("3.6", "3.6.0"), ("3.9", "3.9.0-rc3")]

# Kafka 4.0 = trunk HEAD of 2024-10-25 (4.0-dev, "broker" listener only: 4.0 has no
# ZooKeeper mode) with KIP-896's minimums (the codec's, which is generated from 4.1 and
# shares 4.0's minimums) and the version bumps merged for 4.0 after that snapshot. Each
# bump is also in the codec (4.1), which is how it is known to exist.
BUMPS_4_0 = {
    0: (12, "KIP-890 transactions v2 (Produce v12)"),
    15: (6, "KIP-1043 GROUP_ID_NOT_FOUND (DescribeGroups v6)"),
    26: (5, "KIP-890 (EndTxn v5)"),
    28: (5, "KIP-890 (TxnOffsetCommit v5)"),
    60: (2, "KIP-1073 fenced brokers (DescribeCluster v2)"),
    68: (1, "KIP-848 regular expressions (ConsumerGroupHeartbeat v1)"),
    69: (1, "KIP-848 (ConsumerGroupDescribe v1)"),
}
# Kafka 4.1 = the codec's ranges (kafka-protocol 0.18 is generated from 4.1.0 and drops an
# unstable latest version) for the APIs of 4.0, with Fetch capped at 17 (4.1 advertises
# Fetch 4-17; v18 is inter-broker only).
CAPS_4_1 = {1: 17}


def codec_ranges(vendor):
    """api key -> (name, min, max) of Req::VERSIONS ∩ Resp::VERSIONS in the vendored crate."""
    import os
    import re
    src = open(os.path.join(vendor, "src/messages.rs")).read()

    def versions(name):
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
        text = open(os.path.join(vendor, "src/messages", snake + ".rs")).read()
        m = re.search(r"impl Message for " + name + r" \{\s*const VERSIONS: VersionRange = "
                      r"VersionRange \{ min: (\d+), max: (\d+) \}", text)
        return int(m.group(1)), int(m.group(2))

    out = {}
    for m in re.finditer(r"impl Request for (\w+) \{\s*const KEY: i16 = (\d+);\s*"
                         r"type Response = (\w+);", src):
        (rlo, rhi), (plo, phi) = versions(m.group(1)), versions(m.group(3))
        out[int(m.group(2))] = (m.group(1).removesuffix("Request"), max(rlo, plo), min(rhi, phi))
    return out


def write(path, release, source, rows):
    with open(path, "w") as f:
        f.write(f"//! Kafka {release}: the API versions its brokers advertise. Generated once by\n")
        f.write("//! `scripts/kafka_versions.py --emit broker/src/versions`; do not edit by hand.\n")
        for line in source:
            f.write(f"//! {line}\n")
        f.write("\nuse super::Api;\n\n#[rustfmt::skip]\npub const APIS: &[Api] = &[\n")
        for key, name, lo, hi in rows:
            f.write(f"    Api {{ key: {key}, name: \"{name}\", min: {lo}, max: {hi} }},\n")
        f.write("];\n")


def emit(repo, out_dir, vendor):
    import os
    for release, ref in RELEASES:
        src = [f"Source: `clients/src/main/resources/common/message/*Request.json` at `{ref}`",
               "(APIs a broker listener serves; an unstable latest version is not advertised)."]
        write(os.path.join(out_dir, f"kafka_{release.replace('.', '_')}.rs"), release, src,
              ranges(repo, ref))
    codec = codec_ranges(vendor)
    rows40 = []
    for key, name, lo, hi in ranges(repo, "HEAD", ("broker",)):
        if key not in codec:
            continue  # not in 4.1 either: removed by 4.0 (KIP-896 / ZooKeeper removal)
        lo = 0 if key == 0 else max(lo, codec[key][1])  # Produce: KAFKA-18659
        hi = BUMPS_4_0.get(key, (hi, ""))[0]
        rows40.append((key, name, lo, hi))
    src40 = ["Source: the message JSON at trunk 1eb7644 (2024-10-25, 4.0-dev; `broker` listener),",
             "minimums raised to KIP-896's (= the codec's; Produce stays 0, KAFKA-18659), and the",
             "bumps merged for 4.0 after that commit:"] + \
            [f"- key {k}: max {v}, {why}" for k, (v, why) in sorted(BUMPS_4_0.items())]
    write(os.path.join(out_dir, "kafka_4_0.rs"), "4.0", src40, rows40)
    rows41 = []
    for key, name, _, _ in rows40:
        cname, lo, hi = codec[key]
        lo = 0 if key == 0 else lo
        rows41.append((key, cname, lo, min(hi, CAPS_4_1.get(key, hi))))
    src41 = ["Source: kafka-protocol 0.18 (vendor/kafka-protocol, generated from Kafka 4.1.0):",
             "`Req::VERSIONS ∩ Resp::VERSIONS` for every API of 4.0; Produce min 0 (KAFKA-18659);",
             "Fetch capped at 17 (v18 only adds a follower field). OffsetCommit/OffsetFetch v10",
             "exist in 4.1 but the codec's request structs stop at v9 (unstable in its spec)."]
    write(os.path.join(out_dir, "kafka_4_1.rs"), "4.1", src41, rows41)


def main():
    args = sys.argv[1:]
    repo = "/work/.mirror/apache+kafka/repo"
    if args[:1] == ["--repo"]:
        repo, args = args[1], args[2:]
    if args[:1] == ["--emit"]:
        import os
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        emit(repo, args[1], os.path.join(root, "vendor/kafka-protocol"))
        return
    for ref in args:
        for key, name, lo, hi in ranges(repo, ref):
            print(ref, key, name, lo, hi)


if __name__ == "__main__":
    main()
