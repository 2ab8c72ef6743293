#!/usr/bin/env python3
"""Write an RTP/PCMU pcap for sipp's play_pcap_audio: a WAV (8 kHz mono
16-bit) or, without one, an 8-second 440 Hz tone; 20 ms packets.
Usage: make_prompt_pcap.py OUT.pcap [IN.wav] [seconds]"""
import math, struct, sys, wave

def ulaw(s):
    # G.711 µ-law (ITU-T G.711 §3), 14-bit magnitude with bias 0x84.
    BIAS, CLIP = 0x84, 32635
    sign = 0x80 if s < 0 else 0
    s = min(abs(s), CLIP) + BIAS
    exp = 7
    for e in range(7, -1, -1):
        if s & (0x4000 >> (7 - e)):
            exp = e; break
    mant = (s >> (exp + 3)) & 0x0F
    return ~(sign | (exp << 4) | mant) & 0xFF

out = sys.argv[1]
secs = float(sys.argv[3]) if len(sys.argv) > 3 else 8.0
if len(sys.argv) > 2 and sys.argv[2] != "-":
    w = wave.open(sys.argv[2]); pcm = struct.unpack("<%dh" % w.getnframes(), w.readframes(w.getnframes()))
    pcm = list(pcm)[: int(secs * 8000)]
    pcm += [0] * (int(secs * 8000) - len(pcm))
else:
    pcm = [int(8000 * math.sin(2 * math.pi * 440 * i / 8000)) for i in range(int(secs * 8000))]
f = open(out, "wb")
f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))  # Ethernet link type
ssrc, seq, ts = 0x1234ABCD, 1, 0
for k in range(0, len(pcm), 160):
    payload = bytes(ulaw(x) for x in pcm[k:k + 160])
    rtp = struct.pack("!BBHII", 0x80, 0 | (0x80 if k == 0 else 0), seq, ts, ssrc) + payload
    udp = struct.pack("!HHHH", 6000, 6000, 8 + len(rtp), 0) + rtp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])) + udp
    eth = b"\x00" * 12 + b"\x08\x00" + ip
    t = k / 8000.0
    f.write(struct.pack("<IIII", int(t), int((t % 1) * 1e6), len(eth), len(eth)) + eth)
    seq += 1; ts += 160
f.close()
