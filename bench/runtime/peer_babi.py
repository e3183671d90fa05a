#!/usr/bin/env python3
"""PyTorch peer of `mixq-run` for the speed benchmark (bench/runtime).

Does the same work as the runtime on stories260K + bAbI qa1: LoRA rank 8 on
all seven projections (fp32 base), AdamW, batch 16, loss on the answer
tokens, the README prompt; then scores the first N test questions against
every train answer by summed log-likelihood (harness-style tokenisation).
Prints a JSON line with the timings and the accuracy. Uses Debian's
python3-torch only (no transformers / peft).
"""
import argparse
import json
import math
import os
import random
import struct
import time

import torch
import torch.nn.functional as F


class Llama2cTokenizer:
    """llama2.c's tokenizer.bin and its greedy BPE encode."""

    def __init__(self, path):
        with open(path, "rb") as f:
            data = f.read()
        self.max_len = struct.unpack_from("<i", data, 0)[0]
        pos, self.pieces, self.scores = 4, [], []
        while pos < len(data):
            score, n = struct.unpack_from("<fi", data, pos)
            pos += 8
            self.pieces.append(data[pos:pos + n])
            self.scores.append(score)
            pos += n
        self.lookup = {}
        for i, p in enumerate(self.pieces):
            self.lookup.setdefault(p, i)

    def encode(self, text, bos):
        raw = text.encode("utf-8")
        toks = [1] if bos else []
        if raw:
            toks.append(self.lookup[b" "])
        i = 0
        while i < len(raw):
            n = 1
            while i + n < len(raw) and n < 4 and (raw[i + n] & 0xC0) == 0x80:
                n += 1
            cp = raw[i:i + n]
            if cp in self.lookup:
                toks.append(self.lookup[cp])
            else:
                toks.extend(b + 3 for b in cp)
            i += n
        while True:
            best, best_i = -1e10, -1
            for j in range(len(toks) - 1):
                m = self.lookup.get(self.pieces[toks[j]] + self.pieces[toks[j + 1]])
                if m is not None and self.scores[m] > best:
                    best, best_i = self.scores[m], j
            if best_i < 0:
                break
            toks[best_i:best_i + 2] = [self.lookup[self.pieces[toks[best_i]] +
                                                   self.pieces[toks[best_i + 1]]]]
        return toks


def encode_pair(tok, ctx, cont, bos):
    c = tok.encode(ctx, bos)
    whole = tok.encode(ctx + cont, bos)
    return c, whole[len(c):]


def load_babi(path):
    out, story = [], []
    for line in open(path):
        line = line.rstrip("\n")
        if not line.strip():
            continue
        num, rest = line.split(" ", 1)
        if int(num) == 1:
            story = []
        if "\t" in rest:
            q, a = rest.split("\t")[:2]
            out.append((" ".join(story) + "\nQuestion: " + q.strip() +
                        "\nAnswer:", a.strip()))
        else:
            story.append(rest.strip())
    return out


class LoRALinear(torch.nn.Module):
    def __init__(self, w, rank, alpha, dropout):
        super().__init__()
        self.weight = torch.nn.Parameter(w, requires_grad=False)
        out_f, in_f = w.shape
        self.A = torch.nn.Parameter(torch.randn(rank, in_f) / rank)
        self.B = torch.nn.Parameter(torch.zeros(out_f, rank))
        self.scale = alpha / rank
        self.drop = torch.nn.Dropout(dropout)

    def forward(self, x):
        return F.linear(x, self.weight) + \
            F.linear(F.linear(self.drop(x), self.A), self.B) * self.scale


class Model(torch.nn.Module):
    """llama2.c's Transformer (interleaved-pair RoPE) with LoRA linears."""

    def __init__(self, path, rank, alpha, dropout):
        super().__init__()
        with open(path, "rb") as f:
            hdr = struct.unpack("<7i", f.read(28))
            data = torch.frombuffer(bytearray(f.read()), dtype=torch.float32)
        d, hid, L, H, G, V, T = hdr
        shared = V > 0
        V = abs(V)
        self.d, self.H, self.G, self.hd, self.T = d, H, G, d // H, T
        kvd = G * self.hd
        pos = 0

        def take(*shape):
            nonlocal pos
            n = math.prod(shape)
            t = data[pos:pos + n].view(*shape).clone()
            pos += n
            return t
        self.emb = take(V, d)
        rms_att = take(L, d)
        wq, wk, wv, wo = take(L, d, d), take(L, kvd, d), take(L, kvd, d), take(L, d, d)
        rms_ffn = take(L, d)
        w1, w2, w3 = take(L, hid, d), take(L, d, hid), take(L, hid, d)
        self.rms_final = take(d)
        pos += T * self.hd  # freq_cis_real + freq_cis_imag
        self.wcls = self.emb if shared else take(V, d)
        lin = lambda w: LoRALinear(w, rank, alpha, dropout)
        self.layers = torch.nn.ModuleList()
        for l in range(L):
            m = torch.nn.Module()
            m.rms_att, m.rms_ffn = rms_att[l], rms_ffn[l]
            m.q, m.k, m.v, m.o = lin(wq[l]), lin(wk[l]), lin(wv[l]), lin(wo[l])
            m.gate, m.down, m.up = lin(w1[l]), lin(w2[l]), lin(w3[l])
            self.layers.append(m)
        freqs = 1.0 / (10000.0 ** (torch.arange(0, self.hd, 2).float() / self.hd))
        ang = torch.outer(torch.arange(T).float(), freqs)
        self.cos, self.sin = torch.cos(ang), torch.sin(ang)

    @staticmethod
    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w

    def rope(self, x, n):
        a, b = x[..., 0::2], x[..., 1::2]
        c, s = self.cos[:n, None, :], self.sin[:n, None, :]
        return torch.stack((a * c - b * s, a * s + b * c), -1).flatten(-2)

    def forward(self, ids):
        B, n = ids.shape
        x = self.emb[ids]
        mask = torch.full((n, n), float("-inf")).triu(1)
        for m in self.layers:
            h = self.rms(x, m.rms_att)
            q = self.rope(m.q(h).view(B, n, self.H, self.hd), n)
            k = self.rope(m.k(h).view(B, n, self.G, self.hd), n)
            v = m.v(h).view(B, n, self.G, self.hd)
            rep = self.H // self.G
            k = k.repeat_interleave(rep, 2)
            v = v.repeat_interleave(rep, 2)
            q, k, v = (t.transpose(1, 2) for t in (q, k, v))
            att = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd) + mask
            o = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, n, self.d)
            x = x + m.o(o)
            h = self.rms(x, m.rms_ffn)
            x = x + m.down(F.silu(m.gate(h)) * m.up(h))
        return F.linear(self.rms(x, self.rms_final), self.wcls)


def make_example(tok, prompt, answer):
    ctx, cont = encode_pair(tok, prompt, " " + answer, True)
    seq = ctx + cont
    return seq[:-1], [-100] * (len(ctx) - 1) + cont


def pad_batch(examples):
    n = max(len(e[0]) for e in examples)
    ids = torch.zeros(len(examples), n, dtype=torch.long)
    tgt = torch.full((len(examples), n), -100, dtype=torch.long)
    for i, (x, y) in enumerate(examples):
        ids[i, :len(x)] = torch.tensor(x)
        tgt[i, :len(y)] = torch.tensor(y)
    return ids, tgt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("MIXQ_DATA_DIR",
                                                     "../shared/data"))
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--limit", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    torch.set_num_threads(args.threads)
    models = os.path.join(args.data, "models", "stories260K")
    tok = Llama2cTokenizer(os.path.join(models, "tok512.bin"))
    model = Model(os.path.join(models, "stories260K.bin"), 8, 16.0, 0.05)
    babi = os.path.join(args.data, "tasks", "babi")
    train = load_babi(os.path.join(babi, "qa1_single-supporting-fact_train.txt"))
    test = load_babi(os.path.join(babi, "qa1_single-supporting-fact_test.txt"))
    examples = [make_example(tok, p, a) for p, a in train]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    steps = args.epochs * math.ceil(len(examples) / args.batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / steps)
    model.train()
    tokens, t0 = 0, time.perf_counter()
    for _ in range(args.epochs):
        order = list(range(len(examples)))
        random.shuffle(order)
        for b in range(0, len(order), args.batch):
            ids, tgt = pad_batch([examples[i] for i in order[b:b + args.batch]])
            tokens += sum(len(examples[i][0]) for i in order[b:b + args.batch])
            logits = model(ids)
            loss = F.cross_entropy(logits.view(-1, logits.shape[-1]),
                                   tgt.view(-1), ignore_index=-100)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    train_s = time.perf_counter() - t0
    answers = sorted({a for _, a in train})
    model.eval()
    correct, t1 = 0, time.perf_counter()
    with torch.no_grad():
        for prompt, gold in test[:args.limit]:
            reqs = [encode_pair(tok, prompt, " " + a, True) for a in answers]
            seqs = [(c + k)[:-1] for c, k in reqs]
            ids, _ = pad_batch([(s, s) for s in seqs])
            logp = model(ids).log_softmax(-1)
            scores = []
            for i, (c, k) in enumerate(reqs):
                pos = torch.arange(len(c) - 1, len(c) - 1 + len(k))
                scores.append(logp[i, pos, torch.tensor(k)].sum().item())
            correct += answers[max(range(len(answers)),
                                   key=lambda i: scores[i])] == gold
    eval_s = time.perf_counter() - t1
    print(json.dumps({"peer": "pytorch " + torch.__version__,
                      "threads": args.threads, "epochs": args.epochs,
                      "steps": steps, "train_s": train_s,
                      "train_tokens_per_s": tokens / train_s,
                      "eval_questions": min(args.limit, len(test)),
                      "eval_s": eval_s,
                      "acc": correct / min(args.limit, len(test))}))


if __name__ == "__main__":
    main()
