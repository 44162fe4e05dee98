"""The page's one hot loop, a matrix-vector product in WebAssembly SIMD, assembled here byte by byte.

Why not plain JS: measured in Chromium 156 on this project's CPU, a JS loop
multiplies a 2048×512 float matrix by a vector ~650 times a second (1.3 G
multiply-adds/s), which caps a 1×512 LSTM below 700 characters/s.  ``f32x4``
SIMD does four lanes per instruction.  No toolchain is needed (and no library
is fetched): the module is one exported function of a few dozen instructions, written
out below in the binary format with the spec's opcodes, and the page falls
back to a JS loop with the same layout where WebAssembly SIMD is missing.

Layout (the page packs weights so at load): rows in blocks of 4 and columns in
chunks of 4; each (block, chunk) is 16 consecutive floats, row-major within,
so the four rows of a block stream through memory together and share each
load of ``x``.  Rows and columns are padded to multiples of 4 with zeros.
Addresses are byte offsets into the imported memory ``env.mem``::

    matvec(w, x, y, rows, cols):  y[r] = Σ_j W[r, j] · x[j]   (rows, cols multiples of 4, cols ≥ 4)
"""

from __future__ import annotations

I32, V128 = 0x7F, 0x7B
W, X, Y, ROWS, COLS = range(5)  # parameters
XE, YEND, XP = 5, 6, 7  # i32 locals: end of x, end of y, the x pointer
ACC = (8, 9, 10, 11)  # v128 accumulators, one per row of the block
XV = 12  # the x chunk shared by the four rows


def _uleb(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _sleb(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        done = (n == 0 and not byte & 0x40) or (n == -1 and byte & 0x40)
        out.append(byte | (0 if done else 0x80))
        if done:
            return bytes(out)


def _vec(items: list[bytes]) -> bytes:
    return _uleb(len(items)) + b"".join(items)


def _name(text: str) -> bytes:
    return _vec([bytes([b]) for b in text.encode()])


def _section(section_id: int, payload: bytes) -> bytes:
    return bytes([section_id]) + _uleb(len(payload)) + payload


def get(i: int) -> bytes:
    return bytes([0x20, i])


def put(i: int) -> bytes:
    return bytes([0x21, i])


def tee(i: int) -> bytes:
    return bytes([0x22, i])


def const(n: int) -> bytes:
    return b"\x41" + _sleb(n)


def simd(op: int, *immediates: int) -> bytes:
    return b"\xfd" + _uleb(op) + b"".join(_uleb(i) for i in immediates)


ADD, SHL, LT_U, GE_U = b"\x6a", b"\x74", b"\x49", b"\x4f"  # i32
F32_ADD = b"\x92"
BLOCK, LOOP, END = b"\x02\x40", b"\x03\x40", b"\x0b"
F32X4_ADD, F32X4_MUL = simd(228), simd(230)
ZERO = simd(12) + bytes(16)  # v128.const 0


def br_if(depth: int) -> bytes:
    return bytes([0x0D, depth])


def load(offset: int) -> bytes:
    """v128.load at ``offset`` bytes past the address on the stack (alignment hint 16)."""
    return simd(0, 4, offset)


def lane(i: int) -> bytes:
    return simd(31, i)  # f32x4.extract_lane


def f32_store(offset: int) -> bytes:
    return b"\x38" + _uleb(2) + _uleb(offset)


def _matvec_body() -> bytes:
    code = [
        get(X), get(COLS), const(2), SHL, ADD, put(XE),  # xe = x + 4·cols
        get(Y), get(ROWS), const(2), SHL, ADD, put(YEND),  # yend = y + 4·rows
        BLOCK,
        get(Y), get(YEND), GE_U, br_if(0),  # no rows: done
        LOOP,  # one block of 4 rows per turn
        *[ZERO + put(a) for a in ACC],
        get(X), put(XP),
        LOOP,  # one chunk of 4 columns per turn
        get(XP), load(0), put(XV),
        *[get(a) + get(W) + load(16 * k) + get(XV) + F32X4_MUL + F32X4_ADD + put(a) for k, a in enumerate(ACC)],
        get(W), const(64), ADD, put(W),
        get(XP), const(16), ADD, tee(XP), get(XE), LT_U, br_if(0),
        END,
        *[get(Y) + get(a) + lane(0) + get(a) + lane(1) + F32_ADD + get(a) + lane(2) + get(a) + lane(3) + F32_ADD
          + F32_ADD + f32_store(4 * k) for k, a in enumerate(ACC)],  # y[k] = (a0 + a1) + (a2 + a3)
        get(Y), const(16), ADD, tee(Y), get(YEND), LT_U, br_if(0),
        END,
        END,
        END,
    ]
    body = _vec([_uleb(3) + bytes([I32]), _uleb(5) + bytes([V128])]) + b"".join(code)
    return _uleb(len(body)) + body


def matvec_module() -> bytes:
    """The binary module: imports ``env.mem``, exports ``matvec``."""
    functype = b"\x60" + _vec([bytes([I32])] * 5) + _vec([])
    memory_import = _name("env") + _name("mem") + b"\x02\x00\x00"  # memory, no maximum, at least 0 pages
    return (b"\x00asm" + (1).to_bytes(4, "little")
            + _section(1, _vec([functype]))
            + _section(2, _vec([memory_import]))
            + _section(3, _vec([_uleb(0)]))
            + _section(7, _vec([_name("matvec") + b"\x00" + _uleb(0)]))
            + _section(10, _vec([_matvec_body()])))


__all__ = ["matvec_module"]
