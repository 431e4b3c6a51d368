#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Writes the seed corpus of fuzz_api.c into fuzz/corpus/.

Each seed is a small program in fuzz_api.c's byte code (see run_op there):
the first byte is the initial pool size, then one operation after another.
The fuzzer mutates from these; they are kept readable here so that a change
of the byte code can be followed by regenerating them. Files named regress_*
in fuzz/corpus are inputs the fuzzer found that once crashed the library;
they are kept as they are (this script leaves them alone).
"""
import os

MGR, LOOP = 1, 1                      # not NULL
A, B, C = 0, 1, 2                     # node ids "a", "b", "c"
LOCAL = 0x01                          # endpoint: host 127.0.0.1
RESP, REFUSED, BLACKHOLE = 0, 4, 6    # port selectors


def add(node, port, flags=0):
    return [0, MGR, LOOP, node, LOCAL, port, flags]


def disconnect(node):
    return [3, MGR, node]


def get(node):
    return [4, MGR, node]


PING, ECHO, CUT, STALL, HELLO3, NOARGS, NOARRAYS, BIG, MANY, GARBAGE, PREFORMATTED, BINARY = range(12)


def send(shape, proto=0, flags=0, conn=1):
    out = [6, conn, shape, proto, flags]
    if shape == NOARRAYS:
        out.append(5)
    return out


def shrink(sel):      # 0:0 1:n 2:n+1 3:n-1 4:4097 5:2^32-1 6:2^31 7:1 8:raw 9:small
    return [9, MGR, sel] + ([0, 0, 0, 2] if sel == 8 else [])


def expand(sel):      # 7: n+3
    return [10, MGR, sel] + ([0, 0, 0, 9] if sel == 8 else []) + [LOOP]


def pump(ms):
    return [15, ms]


def deadline(i):      # 0, 1, 5, 50, 1000, 2^32-1 ms
    return [13, i]


def env(f):
    return [18, f]


SEEDS = {
    "ping": [2] + add(A, RESP) + pump(15) + get(A) + send(PING) + pump(15),
    "drain_on_shrink": [3] + add(A, RESP) + add(B, RESP) + pump(15) + get(A) + send(ECHO) + get(B)
    + send(ECHO, 3) + shrink(7) + pump(5) + expand(7) + pump(10) + get(A) + send(PING, 2) + pump(10),
    "deadline_on_stall": [2] + deadline(2) + add(A, RESP) + pump(15) + get(A) + send(STALL) + get(A)
    + send(PING) + disconnect(A) + pump(15),
    "cut_mid_reply": [2] + add(A, RESP) + pump(15) + get(A) + send(ECHO) + get(A) + send(CUT) + get(A)
    + send(PING) + pump(15) + get(A) + send(PING) + pump(10),
    "endpoint_change_and_back": [2] + add(A, RESP) + pump(15) + get(A) + send(STALL) + add(A, REFUSED)
    + pump(5) + add(A, RESP) + get(A) + send(PING) + pump(10),
    "shutdown_in_flight_then_init": [2] + add(A, RESP) + pump(15) + get(A) + send(STALL) + shrink(7)
    + [17, 2] + get(A) + [17, 1, 3] + add(B, RESP) + pump(10),
    "huge_commands": [1] + add(A, RESP) + pump(15) + get(A) + send(MANY) + get(A) + send(BIG)
    + get(A) + send(NOARGS) + get(A) + send(NOARRAYS) + pump(15),
    "bad_sizes_and_nulls": [2] + add(A, RESP) + shrink(0) + shrink(5) + shrink(2) + expand(4)
    + expand(6) + expand(1) + [9, 0, 7] + [10, MGR, 7, 0] + [0, 0, 1, A, LOCAL, RESP, 0]
    + [0, MGR, 0, A, LOCAL, RESP, 0] + [0, MGR, LOOP, 6, LOCAL, RESP, 0] + [0, MGR, LOOP, A, 0]
    + [14, 3] + [19, 0] + [19, 1] + [11, 0, 1] + [12, 0, A] + env(4),
    "protocols": [2] + add(A, RESP) + pump(15) + get(A) + send(ECHO, 2) + get(A) + send(ECHO, 3)
    + get(A) + send(ECHO, 4) + get(A) + send(ECHO, 0xFC) + get(A) + send(GARBAGE, 1, 1) + get(A)
    + send(PREFORMATTED, 3) + get(A) + send(BINARY, 2, 1) + pump(15),
    "oss_auth_and_states": [2] + env(0) + add(A, RESP, 1) + add(B, BLACKHOLE) + add(C, REFUSED)
    + pump(15) + [11, 0x39, MGR, MGR] + get(A) + send(PING) + [12, MGR, A] + [14, 0] + pump(10),
    "connect_timeout_and_reset": [2] + env(13) + add(A, BLACKHOLE) + add(B, RESP) + pump(15)
    + get(B) + send(STALL) + env(2) + pump(15) + get(B) + send(PING) + pump(5),
    "zero_deadline_flap": [4] + deadline(0) + add(A, RESP) + pump(15) + get(A) + send(ECHO) + get(A)
    + send(ECHO) + shrink(7) + expand(7) + shrink(3) + expand(2) + pump(10),
    # Reply callbacks calling back into the manager (op 19, top bit: the action).
    "callback_sends_next": [2] + add(A, RESP) + pump(15) + [19, 0x81] + get(A) + send(ECHO) + get(A)
    + send(CUT) + pump(12) + get(A) + send(STALL) + [17, 2],
    "callback_changes_pools": [3] + add(A, RESP) + add(B, RESP) + pump(15) + [19, 0x85] + get(A)
    + send(ECHO) + get(B) + send(PING) + pump(12) + [19, 0x84] + get(A) + send(PING) + pump(12)
    + [19, 0x82] + get(B) + send(ECHO) + pump(6),
    "callback_in_shutdown": [2] + add(A, RESP) + pump(15) + [19, 0x85] + get(A) + send(STALL)
    + get(A) + send(STALL) + [17, 2] + [17, 1, 2] + add(A, RESP) + pump(5),
    "loop_never_runs": [0x82] + add(A, RESP) + add(B, REFUSED) + add(C, BLACKHOLE) + shrink(7)
    + expand(7) + disconnect(A) + add(A, RESP) + get(B) + send(PING),
}


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    os.makedirs(out, exist_ok=True)
    for name, prog in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(bytes(b & 0xFF for b in prog))
    print(f"{len(SEEDS)} seeds in {out}")


if __name__ == "__main__":
    main()
