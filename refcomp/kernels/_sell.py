"""Sliced ELLPACK layout of a CSR matrix and its 8-lane gather multiply-add.

The sparse matrix-vector kernel is bound by loads: per stored entry a CSR
loop loads an index, a value and the gathered ``x`` element.  In the sliced
layout (SELL-C-sigma, Kreutzer, Hager, Wellein, Fehske & Bishop, SIAM J.
Sci. Comput. 36(5), 2014, with C = 8 and sigma = :data:`WINDOW`) eight rows are stored interleaved,
entry p of row lane l at ``start + 8*p + l``, so one vector load brings the
p-th index (and value) of all eight rows, one AVX gather their ``x``
elements, and one vector multiply-add advances eight independent row sums.
Measured on the 2-core test VM (4096x4096 at 99%, float32, one thread):
84 -> 48 us, identical bits.

Arithmetic: lane l of :func:`lanes8` is exactly the sequential float64 sum
of the scalar kernels, ``acc = acc + float64(value) * x[index]`` (or the
fused ``fma(float64(value), x[index], acc)`` when ``fused``, which callers
set only when the product is exact) for p = 0, 1, ..., n-1, starting from
+0.0.  Vector lanes never mix, so no reassociation happens; the result is
bit-identical to the row loop.  (NaN: when two NaNs meet in one operation,
which payload survives is not specified, see :mod:`refcomp.kernels.sparse`.)

Only the common prefix of each group of eight rows is stored here (``n`` =
the shortest row of the group, no padding, so no fake terms); the rest of
each row ("tail", stored entries ``indptr[r] + n`` onwards) stays in the CSR
arrays and the caller continues the same sequential sum there.  The layout
copies the prefix entries (index and value): about 8 bytes per stored
float32 entry, kept with the matrix.
"""

from collections import namedtuple

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from ._fma import madd
from ._host import gathers_mitigated, has_feature
from ._vector_ir import multiply_add, splat

__all__ = ["LANES", "WINDOW", "GATHER_OK", "SlicedLayout", "sliced_layout", "lanes8"]

#: Rows per slice (one AVX-512 register of float64, two AVX2 registers).
LANES = 8

#: Rows are grouped by length within windows of this many rows before being
#: cut into slices: wide enough that almost every slice holds eight rows of
#: one length (no tails; 4096x4096 at 99% has about 35 distinct lengths).
#: The layout stores the slices contiguously, so unlike the row loop's
#: window (:data:`refcomp.kernels.sparse._ORDER_WINDOW`) this one does not
#: trade against the locality of the stored entries.
WINDOW = 1 << 14
#: Layout positions built per batch by :func:`sliced_layout`.
_BUILD_BATCH = 1 << 20

SlicedLayout = namedtuple("SlicedLayout", "order slice_ptr slice_len slice_tail indices data")
SlicedLayout.__doc__ = """Sliced ELLPACK prefix of a CSR matrix (see module docstring).

order : int64 (rows,); processing order, a permutation of the rows
slice_ptr : int64 (n_slices + 1,); slice s occupies ``[slice_ptr[s], slice_ptr[s+1])``
slice_len : int64 (n_slices,); entries per row stored for slice s
slice_tail : bool (n_slices,); whether a row of slice s has more entries
indices, data : (slice_ptr[-1],) int32 and the CSR value dtype; interleaved
    by lane, entry p of lane l at ``slice_ptr[s] + LANES*p + l``
Slice s holds the rows ``order[LANES*s : LANES*(s+1)]``; the last
``rows % LANES`` rows of ``order`` are in no slice.
"""


def sliced_layout(indptr, indices, data, order):
    """Build the :class:`SlicedLayout` of a CSR matrix whose rows are
    processed in ``order`` (a permutation of the rows, int64; rows of equal
    length next to each other keep the tails short).  Pure NumPy, O(nnz);
    the arrays are new (the CSR arrays are only read)."""
    rows = order.shape[0]
    n_slices = rows // LANES
    grouped = order[:n_slices * LANES].reshape(n_slices, LANES)
    starts = indptr[grouped]                                   # (n_slices, LANES)
    lengths = indptr[grouped + 1] - starts
    slice_len = lengths.min(axis=1, initial=np.iinfo(np.int64).max).astype(np.int64)
    slice_tail = lengths.max(axis=1, initial=0) > slice_len
    slice_ptr = np.zeros(n_slices + 1, dtype=np.int64)
    np.cumsum(slice_len * LANES, out=slice_ptr[1:])
    total = int(slice_ptr[-1])
    out_indices = np.empty(total, dtype=indices.dtype)
    out_data = np.empty(total, dtype=data.dtype)
    # In batches of about _BUILD_BATCH positions, so the int64 temporaries
    # stay small whatever nnz is (a single pass would need 24 bytes per entry).
    s0 = 0
    while s0 < n_slices:
        s1 = int(np.searchsorted(slice_ptr, slice_ptr[s0] + _BUILD_BATCH, side="right"))
        s1 = min(n_slices, max(s1 - 1, s0 + 1))
        q0, q1 = int(slice_ptr[s0]), int(slice_ptr[s1])
        # Position q of the layout: slice s, step p, lane l -> CSR entry starts[s, l] + p.
        s = np.repeat(np.arange(s0, s1, dtype=np.int64), slice_len[s0:s1] * LANES)
        within = np.arange(q0, q1, dtype=np.int64) - slice_ptr[s]
        src = starts[s, within % LANES] + within // LANES
        out_indices[q0:q1] = indices[src]
        out_data[q0:q1] = data[src]
        s0 = s1
    return SlicedLayout(order, slice_ptr, slice_len, slice_tail, out_indices, out_data)


def _lanes8_codegen(fused):
    def codegen(context, builder, signature, args):
        data_t, index_t, x_t = signature.args[:3]
        data_a, index_a, x_a, start, n = args[:5]
        data_arr = context.make_array(data_t)(context, builder, data_a)
        index_arr = context.make_array(index_t)(context, builder, index_a)
        x_arr = context.make_array(x_t)(context, builder, x_a)
        f64, i32, i64 = ir.DoubleType(), ir.IntType(32), ir.IntType(64)
        vf64, vi64 = ir.VectorType(f64, LANES), ir.VectorType(i64, LANES)
        vindex = ir.VectorType(context.get_value_type(index_t.dtype), LANES)
        vdata = ir.VectorType(context.get_value_type(data_t.dtype), LANES)
        mask_t = ir.VectorType(ir.IntType(1), LANES)
        xel = context.get_value_type(x_t.dtype)
        vx = ir.VectorType(xel, LANES)
        vptr = ir.VectorType(ir.PointerType(xel), LANES)
        xsize = 4 if x_t.dtype == types.float32 else 8
        suffix = "v8f32.v8p0f32" if xsize == 4 else "v8f64.v8p0f64"
        gather = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vx, [vptr, i32, mask_t, vx]),
            "llvm.masked.gather." + suffix)
        acc = cgutils.alloca_once_value(builder, ir.Constant(vf64, [0.0] * LANES))
        base = builder.ptrtoint(x_arr.data, i64)
        base = splat(builder, vi64, base)
        all_lanes = ir.Constant(mask_t, [1] * LANES)
        with cgutils.for_range(builder, n) as loop:
            pos = builder.add(start, builder.mul(loop.index, ir.Constant(i64, LANES)))
            idx = builder.load(builder.bitcast(builder.gep(index_arr.data, [pos]),
                                               ir.PointerType(vindex)), align=4)
            # Indices are non-negative (CSR validation): zero extension is exact.
            addr = builder.add(base, builder.mul(builder.zext(idx, vi64),
                                                 ir.Constant(vi64, [xsize] * LANES)))
            xv = builder.call(gather, [builder.inttoptr(addr, vptr), ir.Constant(i32, xsize),
                                       all_lanes, ir.Constant(vx, ir.Undefined)])
            if vx != vf64:
                xv = builder.fpext(xv, vf64)        # float32 -> float64: exact
            dv = builder.load(builder.bitcast(builder.gep(data_arr.data, [pos]),
                                              ir.PointerType(vdata)), align=4)
            if vdata != vf64:
                dv = builder.fpext(dv, vf64)        # float32 -> float64: exact
            builder.store(multiply_add(builder, dv, xv, builder.load(acc), fused), acc)
        result = builder.load(acc)
        out = cgutils.get_null_value(context.get_value_type(signature.return_type))
        for lane in range(LANES):
            out = builder.insert_value(
                out, builder.extract_element(result, ir.Constant(i32, lane)), lane)
        return out
    return codegen


@intrinsic
def _lanes8_intrinsic(typingctx, data, index, x, start, n, fused):
    # The codegen addresses the arrays as packed memory: C-contiguous only.
    if not (isinstance(data, types.Array) and data.dtype in (types.float32, types.float64)
            and isinstance(index, types.Array) and index.dtype == types.int32
            and isinstance(x, types.Array) and x.dtype in (types.float32, types.float64)
            and all(a.ndim == 1 and a.layout == "C" for a in (data, index, x))
            and isinstance(fused, types.BooleanLiteral)):
        return None
    sig = types.UniTuple(types.float64, LANES)(data, index, x, types.int64, types.int64, fused)
    return sig, _lanes8_codegen(fused.literal_value)


def _lanes8_interpreted(data, index, x, start, n, fused):
    acc = [np.float64(0.0)] * LANES
    for p in range(n):
        for lane in range(LANES):
            q = start + LANES * p + lane
            acc[lane] = madd(np.float64(data[q]), np.float64(x[index[q]]), acc[lane], fused)
    return tuple(acc)


# Numba's cache keys a function on its own source file only: after editing
# this module, clear the caches of refcomp/kernels/sparse.py (its drivers
# inline lanes8) or touch that file.
@numba.njit(cache=True, inline="always")
def lanes8(data, index, x, start, n, fused):
    """The eight row sums of one slice: ``(acc_0, ..., acc_7)`` float64, lane l
    the sequential sum over p < n of ``float64(data[q]) * x[index[q]]``,
    q = start + 8p + l, from +0.0 (fused multiply-add when ``fused``, a
    compile-time literal: only for exact products).  ``data`` and ``x``
    float32 or float64 (float32 converted exactly on load), ``index`` int32
    (valid indices of ``x``), contiguous; no bounds checks (private)."""
    if fused:
        return _lanes8_intrinsic(data, index, x, np.int64(start), np.int64(n), True)
    return _lanes8_intrinsic(data, index, x, np.int64(start), np.int64(n), False)


if numba.config.DISABLE_JIT:
    lanes8 = _lanes8_interpreted    # noqa: F811  (an intrinsic cannot be interpreted)


#: Whether the sliced kernel is used at all on this machine (speed only:
#: both paths give the same bits): it needs hardware gathers (AVX2; measured
#: with AVX-512) that no microcode mitigation slows down.
GATHER_OK = has_feature("avx2") and not gathers_mitigated()
