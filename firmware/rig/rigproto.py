# Line protocol of the labctl tensile rig (see PROTOCOL.md). MicroPython and CPython.
#
# Every line the firmware sends ends in "*XXXX": the CRC-16/CCITT-FALSE of the text before the
# "*", as four upper-case hex digits. A table keeps the per-byte cost to one lookup and stays in
# small ints on MicroPython (CRC-32 would allocate big ints on every byte).

_TABLE = []
for _i in range(256):
    _c = _i << 8
    for _b in range(8):
        if _c & 0x8000:
            _c = ((_c << 1) ^ 0x1021) & 0xFFFF
        else:
            _c = (_c << 1) & 0xFFFF
    _TABLE.append(_c)
_TABLE = tuple(_TABLE)


def crc16(text):
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) of an ASCII string."""
    crc = 0xFFFF
    table = _TABLE
    for ch in text.encode():
        crc = ((crc << 8) & 0xFF00) ^ table[((crc >> 8) ^ ch) & 0xFF]
    return crc


def seal(body):
    """The line to send for `body`: body, '*', checksum, newline."""
    return "%s*%04X\n" % (body, crc16(body))


def frame(seq, t_us, steps, raw, force):
    return seal("D,%d,%d,%d,%d,%.4f" % (seq, t_us, steps, raw, force))


def fields(pairs):
    """'k=v k=v' for a list of (key, value) pairs; floats get 6 significant digits."""
    out = []
    for key, value in pairs:
        if isinstance(value, float):
            out.append("%s=%.6g" % (key, value))
        else:
            out.append("%s=%s" % (key, value))
    return " ".join(out)


def parse_command(line):
    """Split a command line into (VERB, positional args, {key: value}). Keys are lower-case."""
    words = line.strip().split()
    if not words:
        return "", [], {}
    verb = words[0].upper()
    args = []
    opts = {}
    for word in words[1:]:
        eq = word.find("=")
        if eq > 0:
            opts[word[:eq].lower()] = word[eq + 1:]
        else:
            args.append(word)
    return verb, args, opts
