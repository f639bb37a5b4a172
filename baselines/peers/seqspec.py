"""seqspec.py: the --seq grammar, the same as chela-bench's (harness/seqparse.c).

    list  := item (',' item)*
    item  := n | n '..' n | n '..' n ':' n
    n     := digits ['k' | 'K']          (k = 1024)

'a..b' doubles from a while <= b (1k..64k: the 7 powers of two); 'a..b:s' steps by s.
Values must be in 1..SEQ_MAX_T; duplicates are dropped, order is kept; at most
SEQ_MAX_POINTS lengths and a spec of at most 511 characters.  Every failure names
the offending text with the message seqparse.c gives.  Pure Python: no torch.
"""

SEQ_MAX_POINTS = 256
SEQ_MAX_T = 1 << 26  # 64M tokens, as seqparse.h


class SeqError(ValueError):
    """A bad --seq value; str() is the one-line message."""


def _num(item, s, i, what):
    """Parses n at s[i:]; returns (value, next index)."""
    if i >= len(s) or not s[i].isdigit() or not s[i].isascii():
        raise SeqError("--seq: '%s': expected a number at '%s'" % (item, s[i:] if i < len(s) else "(end)"))
    v = 0
    while i < len(s) and s[i].isascii() and s[i].isdigit():
        v = v * 10 + (ord(s[i]) - 48)
        if v > SEQ_MAX_T:
            raise SeqError("--seq: '%s': number too large (max %d)" % (item, SEQ_MAX_T))
        i += 1
    if i < len(s) and s[i] in "kK":
        v *= 1024
        i += 1
    if v > SEQ_MAX_T:
        raise SeqError("--seq: '%s': %d is too large (max %d)" % (item, v, SEQ_MAX_T))
    if v == 0:
        raise SeqError("--seq: '%s': %s must be at least 1 (got 0)" % (item, what))
    return v, i


def _push(out, v):
    if v in out:
        return
    if len(out) >= SEQ_MAX_POINTS:
        raise SeqError("--seq: more than %d lengths" % SEQ_MAX_POINTS)
    out.append(v)


def _item(item, out):
    a, i = _num(item, item, 0, "a sequence length")
    if i == len(item):
        _push(out, a)
        return
    if not item.startswith("..", i):
        raise SeqError("--seq: '%s': unexpected '%s' (write 1k..64k, 1k..8k:1k or 1024,2k)" % (item, item[i:]))
    b, i = _num(item, item, i + 2, "a sequence length")
    step = 0
    if i < len(item) and item[i] == ":":
        step, i = _num(item, item, i + 1, "the step")
    if i != len(item):
        raise SeqError("--seq: '%s': unexpected '%s' after the range" % (item, item[i:]))
    if a > b:
        raise SeqError("--seq: '%s': range start %d is above its end %d" % (item, a, b))
    v = a
    while v <= b:
        _push(out, v)
        v = v + step if step else v * 2


def parse_seq(spec):
    """The lengths of spec, in order, or SeqError with seqparse.c's message."""
    if not spec:
        raise SeqError("--seq: empty (write e.g. 1k..64k)")
    if len(spec) >= 512:
        raise SeqError("--seq: value too long")
    if spec.startswith(",") or spec.endswith(",") or ",," in spec:
        raise SeqError("--seq: '%s': empty item in the list" % spec)
    out = []
    for item in spec.split(","):
        _item(item, out)
    return out
