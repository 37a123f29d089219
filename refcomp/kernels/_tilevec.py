"""A register tile of float64 dot products, one output per vector lane.

``tile(A, Bp, C, pa, pc, rows, ob, k0, k1, first, fused)`` advances the
sums of R rows (R = :func:`tile_rows`) by the reduction steps ``k0 .. k1-1``:
for every row r < R and lane t < Bp.shape[2],

    C[pc + r', t'] = C[pc + r', t'] + A[pa + r', k] * Bp[ob, k, t]   (k increasing)

with r' = min(r, rows - 1), t' = ob*L + t, starting from +0.0 when
``first`` (else from the value stored in C by the previous call).  Each lane
is its own sequential chain in increasing k, so every output is the scalar
sum of :mod:`refcomp.kernels.linear`, bit for bit; vectors only place
independent outputs side by side (the lanes of one register are L output
columns, the registers of the tile R rows).  Storing a float64 accumulator
between calls and loading it back is exact, so splitting k into blocks
does not change the order of one output's additions.

:func:`tile_gathered` is the same tile with the operand read in place,
``A[p, k] = xf[corner[p] + off[k]]`` (the convolution's implicit im2col).

Rows past ``rows`` repeat row ``rows - 1``: they compute the same values
with the same operations and store them to the same place, so a partial
tile needs neither masks nor branches.  Lanes are never partial: callers
pack Bp with zero columns up to a multiple of L and give C as many columns
(the padding lanes are computed and never read back).

Arithmetic per lane: ``acc = fma(a, b, acc)`` when ``fused`` (callers set it
only when both factors came from float32, so the product is exact and the
fused result equals ``acc + a*b``), else ``acc + a*b`` with a separate
multiply (no contraction: the IR carries no fast-math flags).  NaN: as in
:mod:`refcomp.kernels._rowvec` (two NaNs meeting may keep either payload).

Private: no bounds checks; A (P, K) float32 (widened exactly) or float64,
any strides; Bp (nob, K, L) and C (P', nob*L) C-contiguous float64.
"""

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from ._fma import madd
from ._host import has_feature
from ._vector_ir import multiply_add, splat

__all__ = ["ROWS", "VECTOR", "LANES", "tile", "tile_gathered", "tile_rows", "tile_interpreted",
           "tile_gathered_interpreted"]

#: Rows of a register tile per vector width: with two vectors per row, 16
#: zmm accumulators of 32 with AVX-512 (8 rows: 2 vector loads per 16 FMAs;
#: measured 6 -> 8 rows: see linear_tiled), 12 ymm of 16 with AVX2.  Enough
#: independent chains to hide the FMA latency, few enough to stay in registers.
_ROWS_BY_VL = {8: 8, 4: 6}
#: The most rows of any tile.
ROWS = max(_ROWS_BY_VL.values())
#: Vectors per row of the tile.
_VPR = 2


def _vector_width():
    if has_feature("avx512f"):
        return 8
    if has_feature("avx2") and has_feature("fma"):
        return 4
    return 0


#: float64 lanes of one hardware vector on this host (8 with AVX-512, 4 with
#: AVX2 and FMA), or 0: no vector path (the scalar kernels run).
VECTOR = _vector_width()
#: Output columns of one tile (and of one packed block of Bp).
LANES = _VPR * VECTOR


def _emit(context, builder, vl, fused, b_t, c_t, b_a, c_a, pc, rows, ob, k0, k1, first,
          a_el, row_addr, step_offset):
    """The tile body.  ``row_addr(rr)``: byte address (i64) of row rr's
    operand for k = 0; ``step_offset(k)``: byte offset of step k (i64)."""
    rows_t = _ROWS_BY_VL[vl]
    B = context.make_array(b_t)(context, builder, b_a)
    C = context.make_array(c_t)(context, builder, c_a)
    f64, i64 = ir.DoubleType(), ir.IntType(64)
    vt = ir.VectorType(f64, vl)
    lanes = vl * _VPR
    c_row = builder.extract_value(C.strides, 0)
    kk = builder.extract_value(B.shape, 1)
    last = builder.sub(rows, ir.Constant(i64, 1))
    c_base = builder.ptrtoint(C.data, i64)
    a_rows, c_ptrs = [], []
    for r in range(rows_t):
        rr = builder.select(builder.icmp_signed("<", ir.Constant(i64, r), rows),
                            ir.Constant(i64, r), last)
        a_rows.append(row_addr(rr))
        c_first = builder.add(c_base, builder.add(
            builder.mul(builder.add(pc, rr), c_row),
            builder.mul(ob, ir.Constant(i64, lanes * 8))))
        c_ptrs.append([builder.inttoptr(builder.add(c_first, ir.Constant(i64, v * vl * 8)),
                                        vt.as_pointer()) for v in range(_VPR)])
    zero = ir.Constant(vt, [0.0] * vl)
    accs = []
    for r in range(rows_t):
        row = []
        for v in range(_VPR):
            slot = cgutils.alloca_once(builder, vt)
            with builder.if_else(first) as (then, otherwise):
                with then:
                    builder.store(zero, slot)
                with otherwise:
                    builder.store(builder.load(c_ptrs[r][v], align=8), slot)
            row.append(slot)
        accs.append(row)
    panel = builder.gep(B.data, [builder.mul(builder.mul(ob, kk), ir.Constant(i64, lanes))])
    with cgutils.for_range(builder, builder.sub(k1, k0)) as loop:
        k = builder.add(k0, loop.index)
        bp = builder.gep(panel, [builder.mul(k, ir.Constant(i64, lanes))])
        bv = [builder.load(builder.bitcast(builder.gep(bp, [ir.Constant(i64, v * vl)]),
                                           vt.as_pointer()), align=8)
              for v in range(_VPR)]
        a_off = step_offset(k)
        for r in range(rows_t):
            a = builder.load(builder.inttoptr(builder.add(a_rows[r], a_off),
                                              a_el.as_pointer()))
            if a_el != f64:
                a = builder.fpext(a, f64)           # float32 -> float64: exact
            av = splat(builder, vt, a)
            for v in range(_VPR):
                builder.store(multiply_add(builder, av, bv[v], builder.load(accs[r][v]),
                                           fused), accs[r][v])
    for r in range(rows_t):
        for v in range(_VPR):
            builder.store(builder.load(accs[r][v]), c_ptrs[r][v], align=8)


def _codegen(vl, fused):
    def codegen(context, builder, signature, args):
        a_t, b_t, c_t = signature.args[:3]
        a_a, b_a, c_a, pa, pc, rows, ob, k0, k1, first = args
        A = context.make_array(a_t)(context, builder, a_a)
        i64 = ir.IntType(64)
        a_el = context.get_value_type(a_t.dtype)
        # Strides known at compile time where the layout fixes them (the
        # reduction step of C order, the row step of F order), so the loads
        # use constant displacements.
        a_item = ir.Constant(i64, context.get_abi_sizeof(a_el))
        a_row = a_item if a_t.layout == "F" else builder.extract_value(A.strides, 0)
        a_step = a_item if a_t.layout == "C" else builder.extract_value(A.strides, 1)
        a_base = builder.ptrtoint(A.data, i64)
        _emit(context, builder, vl, fused, b_t, c_t, b_a, c_a, pc, rows, ob, k0, k1, first, a_el,
              lambda rr: builder.add(a_base, builder.mul(builder.add(pa, rr), a_row)),
              lambda k: builder.mul(k, a_step))
        return context.get_dummy_value()
    return codegen


def _gathered_codegen(vl, fused):
    # Implicit im2col: row rr's operand at step k is xf[corner[pc + rr] + off[k]].
    def codegen(context, builder, signature, args):
        x_t, o_t, q_t, b_t, c_t = signature.args[:5]
        x_a, o_a, q_a, b_a, c_a, pc, rows, ob, k0, k1, first = args
        X = context.make_array(x_t)(context, builder, x_a)
        off = context.make_array(o_t)(context, builder, o_a)
        corner = context.make_array(q_t)(context, builder, q_a)
        i64 = ir.IntType(64)
        a_el = context.get_value_type(x_t.dtype)
        a_item = ir.Constant(i64, context.get_abi_sizeof(a_el))
        x_base = builder.ptrtoint(X.data, i64)
        _emit(context, builder, vl, fused, b_t, c_t, b_a, c_a, pc, rows, ob, k0, k1, first, a_el,
              lambda rr: builder.add(x_base, builder.mul(
                  builder.load(builder.gep(corner.data, [builder.add(pc, rr)])), a_item)),
              lambda k: builder.mul(builder.load(builder.gep(off.data, [k])), a_item))
        return context.get_dummy_value()
    return codegen


def _packed_f64(*arrays):
    return all(isinstance(a, types.Array) and a.dtype == types.float64 and a.layout == "C"
               for a in arrays)


def _make(vl, fused):
    @intrinsic
    def _tile(typingctx, A, Bp, C, pa, pc, rows, ob, k0, k1, first):
        # A: float32 (widened exactly) or float64, any strides; Bp, C packed float64.
        ok = (isinstance(A, types.Array) and A.dtype in (types.float32, types.float64)
              and _packed_f64(Bp, C) and (A.ndim, Bp.ndim, C.ndim) == (2, 3, 2))
        if not ok:
            return None
        sig = types.void(A, Bp, C, types.int64, types.int64, types.int64, types.int64,
                         types.int64, types.int64, types.boolean)
        return sig, _codegen(vl, fused)
    return _tile


def _make_gathered(vl, fused):
    @intrinsic
    def _gtile(typingctx, xf, off, corner, Bp, C, pc, rows, ob, k0, k1, first):
        ok = (isinstance(xf, types.Array) and xf.dtype in (types.float32, types.float64)
              and all(isinstance(a, types.Array) and a.dtype == types.int64 and a.layout == "C"
                      and a.ndim == 1 for a in (off, corner))
              and xf.ndim == 1 and xf.layout == "C" and _packed_f64(Bp, C)
              and (Bp.ndim, C.ndim) == (3, 2))
        if not ok:
            return None
        sig = types.void(xf, off, corner, Bp, C, types.int64, types.int64, types.int64,
                         types.int64, types.int64, types.boolean)
        return sig, _gathered_codegen(vl, fused)
    return _gtile


_T8f, _T8, _T4f, _T4 = _make(8, True), _make(8, False), _make(4, True), _make(4, False)
_G8f, _G8, _G4f, _G4 = (_make_gathered(8, True), _make_gathered(8, False),
                        _make_gathered(4, True), _make_gathered(4, False))


@numba.njit(cache=True, inline="always")
def tile_rows(lanes):
    """Rows R of the tile that :func:`tile` runs for packed blocks of ``lanes``."""
    return 8 if lanes == 16 else 6


# Numba's cache keys a function on its own source file only: after editing
# this module, touch refcomp/kernels/linear_tiled.py (its drivers inline tile).
@numba.njit(cache=True, inline="always")
def tile(A, Bp, C, pa, pc, rows, ob, k0, k1, first, fused):
    """See the module docstring.  The vector width follows the packing:
    Bp.shape[2] == 16 runs 8-lane vectors, 8 runs 4-lane vectors (so the
    AVX2 code is testable on an AVX-512 host); ``fused`` is a runtime flag."""
    pa, pc, rows, ob = np.int64(pa), np.int64(pc), np.int64(rows), np.int64(ob)
    k0, k1 = np.int64(k0), np.int64(k1)
    if Bp.shape[2] == 16:
        if fused:
            _T8f(A, Bp, C, pa, pc, rows, ob, k0, k1, first)
        else:
            _T8(A, Bp, C, pa, pc, rows, ob, k0, k1, first)
    elif fused:
        _T4f(A, Bp, C, pa, pc, rows, ob, k0, k1, first)
    else:
        _T4(A, Bp, C, pa, pc, rows, ob, k0, k1, first)


@numba.njit(cache=True, inline="always")
def tile_gathered(xf, off, corner, Bp, C, pc, rows, ob, k0, k1, first, fused):
    """:func:`tile` with ``A[pc + r, k] = xf[corner[pc + r] + off[k]]`` read in
    place (an implicit im2col: no column matrix is written); C's rows are
    ``pc + r`` as well."""
    pc, rows, ob = np.int64(pc), np.int64(rows), np.int64(ob)
    k0, k1 = np.int64(k0), np.int64(k1)
    if Bp.shape[2] == 16:
        if fused:
            _G8f(xf, off, corner, Bp, C, pc, rows, ob, k0, k1, first)
        else:
            _G8(xf, off, corner, Bp, C, pc, rows, ob, k0, k1, first)
    elif fused:
        _G4f(xf, off, corner, Bp, C, pc, rows, ob, k0, k1, first)
    else:
        _G4(xf, off, corner, Bp, C, pc, rows, ob, k0, k1, first)


def tile_gathered_interpreted(xf, off, corner, Bp, C, pc, rows, ob, k0, k1, first, fused):
    """Plain-Python stand-in of :func:`tile_gathered`."""
    lanes = Bp.shape[2]
    for rr in range(min(tile_rows(lanes), rows)):
        for t in range(lanes):
            acc = np.float64(0.0) if first else C[pc + rr, ob * lanes + t]
            for k in range(k0, k1):
                acc = madd(np.float64(xf[corner[pc + rr] + off[k]]), Bp[ob, k, t], acc, fused)
            C[pc + rr, ob * lanes + t] = acc


def tile_interpreted(A, Bp, C, pa, pc, rows, ob, k0, k1, first, fused):
    """Plain-Python stand-in of :func:`tile` (same operations, lane by lane;
    the repeated rows past ``rows`` are skipped: sequentially they would
    restart from the value already stored, where the vector code loads every
    accumulator before it stores any)."""
    lanes = Bp.shape[2]
    for rr in range(min(tile_rows(lanes), rows)):
        for t in range(lanes):
            acc = np.float64(0.0) if first else C[pc + rr, ob * lanes + t]
            for k in range(k0, k1):
                acc = madd(np.float64(A[pa + rr, k]), Bp[ob, k, t], acc, fused)
            C[pc + rr, ob * lanes + t] = acc


if numba.config.DISABLE_JIT:
    tile = tile_interpreted       # noqa: F811  (intrinsics cannot be interpreted)
    tile_gathered = tile_gathered_interpreted    # noqa: F811
