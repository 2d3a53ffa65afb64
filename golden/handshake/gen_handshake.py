#!/usr/bin/env python3
"""Independent generator for the golden/handshake vectors (Python hmac/hashlib,
written from the handshake description, not from grtmp's C++).

Random bytes come from a fixed generator so the C++ side can reproduce them:
    x = (x * 1103515245 + 12345) mod 2^32; byte = (x >> 16) & 0xff
client seed 1, server seed 2; each side draws in the order it builds packets
(C1 bytes 8..1535, then C2; S1 bytes 8..1535, then S2).
"""
import hashlib
import hmac
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
TAIL = bytes.fromhex("F0EEC24A8068BEE82E00D0D1029E7E576EEC5D2D29806FAB93B8E636CFEB31AE")
FP_TEXT = b"Genuine Adobe Flash Player 001"
FMS_TEXT = b"Genuine Adobe Flash Media Server 001"
FP_KEY, FMS_KEY = FP_TEXT + TAIL, FMS_TEXT + TAIL
assert len(FP_KEY) == 62 and len(FMS_KEY) == 68


class Rng:
    def __init__(self, seed):
        self.x = seed

    def take(self, n):
        out = bytearray()
        for _ in range(n):
            self.x = (self.x * 1103515245 + 12345) & 0xFFFFFFFF
            out.append((self.x >> 16) & 0xFF)
        return bytes(out)


def offset(p, scheme):
    if scheme == 0:
        return sum(p[8:12]) % 728 + 12
    return sum(p[772:776]) % 728 + 776


def mac(key, data):
    return hmac.new(key, data, hashlib.sha256).digest()


def packet1(rng, epoch, version, scheme, key):
    p = bytearray(struct.pack(">II", epoch, version) + rng.take(1528))
    if scheme is not None:
        o = offset(p, scheme)
        p[o:o + 32] = mac(key, bytes(p[:o] + p[o + 32:]))
    return bytes(p)


def find(p, key):
    for s in (1, 0):
        o = offset(p, s)
        if mac(key, p[:o] + p[o + 32:]) == p[o:o + 32]:
            return s, p[o:o + 32]
    return None, None


def response(rng, full_key, peer_digest):
    p = bytearray(rng.take(1536))
    p[1504:] = mac(mac(full_key, peer_digest), bytes(p[:1504]))
    return bytes(p)


def server_answer(c1):
    rng = Rng(2)
    scheme, digest = find(c1, FP_TEXT)
    s1 = packet1(rng, 0, 0x04050001, scheme, FMS_TEXT)
    s2 = response(rng, FMS_KEY, digest) if scheme is not None else c1
    return b"\x03" + s1 + s2


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
    print(name, len(data))


def main():
    simple = packet1(Rng(1), 1000, 0, None, None)
    write("c0c1_simple.bin", b"\x03" + simple)
    write("s0s1s2_simple.bin", server_answer(simple))
    for scheme in (0, 1):
        rng = Rng(1)
        c1 = packet1(rng, 1000, 0x0D0E0A0D, scheme, FP_TEXT)
        assert find(c1, FP_TEXT)[0] == scheme
        write(f"c0c1_digest_scheme{scheme}.bin", b"\x03" + c1)
        answer = server_answer(c1)
        write(f"s0s1s2_digest_scheme{scheme}.bin", answer)
        s1 = answer[1:1537]
        s_scheme, s_digest = find(s1, FMS_TEXT)
        assert s_scheme == scheme
        write(f"c2_digest_scheme{scheme}.bin", response(rng, FP_KEY, s_digest))


if __name__ == "__main__":
    main()
