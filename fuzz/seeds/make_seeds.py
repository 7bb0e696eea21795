#!/usr/bin/env python3
"""Regenerates the small hand-made seed corpus under fuzz/seeds/<target>/.

Run from anywhere: python3 fuzz/seeds/make_seeds.py. Only the standard library is used.
The config/zonefile/mmdb seeds are copies of files of the repository (deploy/, src/demo.rs,
geoip/demo.mmdb); the DNS and ECS seeds are built here byte by byte.
"""
import pathlib
import re
import struct

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent

A, NS, SOA, TXT, AAAA, SRV, OPT, ANY = 1, 2, 6, 16, 28, 33, 41, 255


def name(n):
    out = b""
    for label in n.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def ecs_value(family, source, scope, addr):
    return struct.pack(">HBB", family, source, scope) + addr


def opt(payload=1232, options=b""):
    return b"\x00" + struct.pack(">HHIH", OPT, payload, 0, len(options)) + options


def ecs_option(value):
    return struct.pack(">HH", 8, len(value)) + value


def query(qname, qtype, ident=0x4242, flags=0x0100, edns=None, qclass=1):
    """ident's high byte is the first byte: even -> UDP, odd -> TCP in request_path."""
    ar = 0 if edns is None else 1
    msg = struct.pack(">HHHHHH", ident, flags, 1, 0, 0, ar)
    msg += name(qname) + struct.pack(">HH", qtype, qclass)
    if edns is not None:
        msg += edns
    return msg


GEO = "app.default.myfed.svc.fed.example.com."
V4_24 = ecs_value(1, 24, 0, bytes([198, 18, 2]))
V6_56 = ecs_value(2, 56, 0, bytes.fromhex("20010db8000000"))

REQUEST = {
    "a_geo_noedns_udp": query(GEO, A),
    "a_geo_edns_udp": query(GEO, A, edns=opt()),
    "a_geo_ecs_udp": query(GEO, A, edns=opt(options=ecs_option(V4_24))),
    "aaaa_geo_ecs6_tcp": query(GEO, AAAA, ident=0x4343, edns=opt(options=ecs_option(V6_56))),
    "txt_status_udp": query("status.fed.example.com.", TXT, edns=opt(payload=512)),
    "nxdomain_tcp": query("nothing.fed.example.com.", A, ident=0x4343),
    "soa_apex_udp": query("fed.example.com.", SOA, edns=opt()),
    "ns_apex_tcp": query("fed.example.com.", NS, ident=0x4343, edns=opt()),
    "any_geo_udp": query(GEO, ANY),
    "srv_geo_udp": query("_http._tcp." + GEO, SRV, edns=opt()),
    "refused_outside_udp": query("www.example.org.", A),
    "ecs_hostbits_udp": query(GEO, A, edns=opt(options=ecs_option(ecs_value(1, 8, 0, bytes([198, 18]))))),
    "ecs_dup_udp": query(GEO, A, edns=opt(options=ecs_option(V4_24) * 2)),
    "chaos_class_udp": query("version.bind.", TXT, qclass=3),
    "malformed_truncated": query(GEO, A)[:20],
    "malformed_badlabel": bytes.fromhex("4242010000010000000000004041424300000100"),
}

ECS = {
    "v4_24": V4_24,
    "v6_56": V6_56,
    "v4_0": ecs_value(1, 0, 0, b""),
    "v4_32": ecs_value(1, 32, 0, bytes([127, 0, 0, 1])),
    "bad_family": ecs_value(3, 8, 0, b"\x01"),
    "host_bits": ecs_value(1, 8, 0, bytes([198, 18])),
    "packet_ecs": REQUEST["a_geo_ecs_udp"],
    "packet_dup": REQUEST["ecs_dup_udp"],
}


def demo_const(ident):
    src = (ROOT / "src" / "demo.rs").read_text()
    m = re.search(r"pub const " + ident + r": &str = r#\"(.*?)\"#;", src, re.S)
    return m.group(1)


def write(target, files):
    d = HERE / target
    d.mkdir(parents=True, exist_ok=True)
    for fname, data in files.items():
        (d / fname).write_bytes(data if isinstance(data, bytes) else data.encode())


write("request_path", REQUEST)
write("ecs", ECS)
write("config", {
    "demo.yaml": demo_const("CONFIG"),
    "deploy.yaml": (ROOT / "deploy/base/config/fedns.yaml").read_bytes(),
})
write("zonefile", {
    "demo.zone": demo_const("ZONE"),
    "deploy.zone": (ROOT / "deploy/base/config/fed.example.com.zone").read_bytes(),
})
write("mmdb", {"demo.mmdb": (ROOT / "geoip/demo.mmdb").read_bytes()})
