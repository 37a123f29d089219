"""One CSR row times a dense block, with the accumulators in vector registers.

``row_block(...)`` computes, for one output row r and the output columns
``c0 .. c0+width-1`` (width <= W, W in {8, 16, 32, 64} a compile-time
constant), the float64 sums ``acc[t] = sum_j data[j] * X[indices[j], c0+t]``
over the row's stored entries j in stored order, starting from +0.0, then
``acc + bias`` (when ``has_bias``), rounded once to the output dtype and
stored into ``out[r, c0:c0+width]``.  The W accumulators live in registers
(a W-lane LLVM vector: 64 float64 are eight AVX-512 registers), each column
is its own sequential chain, so the bits are those of the scalar contract
in :mod:`refcomp.kernels.sparse`; only the loop nest differs.  Lanes past
``width`` are masked: they neither load nor store.

Measured (2-core VM, one thread, k = 64, float32): 9216x128 at 90% 1030 ->
668 us, at 99% 234 -> 172 us; 4096x4096 at 90% 13.4 -> 10.3 ms (the row
sweeps this replaces kept the accumulators in memory and used 256-bit
vectors).

Arithmetic per lane: ``acc = fma(float64(data[j]), float64(X[c, t]), acc)``
when ``fused`` (callers set it only when both factors are float32, so the
product is exact and the fused result equals ``acc + a*x``), else
``acc = acc + a*x`` with a separate multiply; float32 operands are widened
exactly.  Private: no bounds checks; ``data`` (float32/float64),
``indices`` (int32), X (2-D, float32/float64) and ``bias`` (float64) must be
C-contiguous (the typer refuses other layouts); ``out`` may be strided (then
a scatter store is used).

NaN: a NaN operand propagates as in the scalar kernels; when two NaNs meet
in one operation, which payload survives is not specified (IEEE 754 leaves
it open, and LLVM may commute the operands), so only such results may differ
in their payload bits between kernels.
"""

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from ._fma import madd
from ._host import has_feature
from ._vector_ir import multiply_add, splat

__all__ = ["ROWVEC_OK", "row_block"]


def _codegen(lanes, fused):
    def codegen(context, builder, signature, args):
        (data_t, index_t, x_t, _, _, out_t, _, _, _, bias_t, _) = signature.args
        (data_a, index_a, x_a, j0, j1, out_a, r, c0, width, bias_a, has_bias) = args
        data = context.make_array(data_t)(context, builder, data_a)
        index = context.make_array(index_t)(context, builder, index_a)
        xarr = context.make_array(x_t)(context, builder, x_a)
        out = context.make_array(out_t)(context, builder, out_a)
        bias = context.make_array(bias_t)(context, builder, bias_a)
        f64, i32, i64 = ir.DoubleType(), ir.IntType(32), ir.IntType(64)
        vf64 = ir.VectorType(f64, lanes)
        xel, oel = context.get_value_type(x_t.dtype), context.get_value_type(out_t.dtype)
        vx, vo = ir.VectorType(xel, lanes), ir.VectorType(oel, lanes)
        vmask = ir.VectorType(ir.IntType(1), lanes)
        vi64 = ir.VectorType(i64, lanes)
        suffix_x = f"v{lanes}{'f32' if xel == ir.FloatType() else 'f64'}"
        suffix_o = f"v{lanes}{'f32' if oel == ir.FloatType() else 'f64'}"
        mod = builder.module
        masked_load = cgutils.get_or_insert_function(
            mod, ir.FunctionType(vx, [vx.as_pointer(), i32, vmask, vx]),
            f"llvm.masked.load.{suffix_x}.p0{suffix_x}")
        masked_store = cgutils.get_or_insert_function(
            mod, ir.FunctionType(ir.VoidType(), [vo, vo.as_pointer(), i32, vmask]),
            f"llvm.masked.store.{suffix_o}.p0{suffix_o}")
        vptr_o = ir.VectorType(oel.as_pointer(), lanes)
        masked_scatter = cgutils.get_or_insert_function(
            mod, ir.FunctionType(ir.VoidType(), [vo, vptr_o, i32, vmask]),
            f"llvm.masked.scatter.{suffix_o}.v{lanes}p0{'f32' if oel == ir.FloatType() else 'f64'}")

        iota = ir.Constant(vi64, list(range(lanes)))
        mask = builder.icmp_unsigned("<", iota, splat(builder, vi64, width))
        x_item = context.get_abi_sizeof(xel)
        o_item = context.get_abi_sizeof(oel)
        x_row_bytes = builder.extract_value(xarr.strides, 0)
        x_base = builder.add(builder.ptrtoint(xarr.data, i64),
                             builder.mul(c0, ir.Constant(i64, x_item)))
        align_x = ir.Constant(i32, x_item)
        zeros_x = ir.Constant(vx, [0.0] * lanes)

        acc = cgutils.alloca_once_value(builder, ir.Constant(vf64, [0.0] * lanes))

        def sweep(load_row):
            with cgutils.for_range(builder, builder.sub(j1, j0)) as loop:
                j = builder.add(j0, loop.index)
                a = builder.load(builder.gep(data.data, [j]))
                if a.type != f64:
                    a = builder.fpext(a, f64)             # float32 -> float64: exact
                # CSR validation guarantees 0 <= index < X rows: zero extension is exact.
                col = builder.zext(builder.load(builder.gep(index.data, [j])), i64)
                row_ptr = builder.inttoptr(builder.add(x_base, builder.mul(col, x_row_bytes)),
                                           vx.as_pointer())
                xv = load_row(row_ptr)
                if vx != vf64:
                    xv = builder.fpext(xv, vf64)
                av = splat(builder, vf64, a)
                builder.store(multiply_add(builder, av, xv, builder.load(acc), fused), acc)

        # Full blocks load without a mask (a mask in the loop measured 1.7x
        # slower: LLVM recomputed it every iteration); a partial block must
        # not read past the end of X's last row.
        full = builder.icmp_unsigned("==", width, ir.Constant(i64, lanes))
        with builder.if_else(full) as (then, otherwise):
            with then:
                sweep(lambda p: builder.load(p, align=x_item))
            with otherwise:
                sweep(lambda p: builder.call(masked_load, [p, align_x, mask, zeros_x]))
        res = builder.load(acc)
        with_bias = builder.fadd(res, splat(builder, vf64, builder.load(
            builder.gep(bias.data, [builder.select(has_bias, r, ir.Constant(i64, 0))]))))
        res = builder.select(has_bias, with_bias, res)
        if vo != vf64:
            res = builder.fptrunc(res, vo)                # the one rounding (half-even)
        o_row = builder.add(builder.ptrtoint(out.data, i64),
                            builder.mul(r, builder.extract_value(out.strides, 0)))
        o_col = builder.extract_value(out.strides, 1)
        first = builder.add(o_row, builder.mul(c0, o_col))
        contiguous = builder.icmp_unsigned("==", o_col, ir.Constant(i64, o_item))
        with builder.if_else(contiguous) as (then, otherwise):
            with then:
                dest = builder.inttoptr(first, vo.as_pointer())
                with builder.if_else(full) as (whole, part):
                    with whole:
                        builder.store(res, dest, align=o_item)
                    with part:
                        builder.call(masked_store, [res, dest, ir.Constant(i32, o_item), mask])
            with otherwise:
                addrs = builder.add(splat(builder, vi64, first),
                                    builder.mul(iota, splat(builder, vi64, o_col)))
                builder.call(masked_scatter, [res, builder.inttoptr(addrs, vptr_o),
                                              ir.Constant(i32, o_item), mask])
        return context.get_dummy_value()
    return codegen


def _packed(arr, ndim, dtypes):
    # The codegen addresses these arrays as packed C-order memory.
    return (isinstance(arr, types.Array) and arr.ndim == ndim and arr.layout == "C"
            and arr.dtype in dtypes)


_FLOATS = (types.float32, types.float64)


def _make_intrinsic(lanes, fused):
    @intrinsic
    def _row_block(typingctx, data, index, X, j0, j1, out, r, c0, width, bias, has_bias):
        # out may have any strides (a scatter stores a strided row).
        if not (_packed(data, 1, _FLOATS) and _packed(index, 1, (types.int32,))
                and _packed(X, 2, _FLOATS) and _packed(bias, 1, (types.float64,))
                and isinstance(out, types.Array) and out.ndim == 2 and out.dtype in _FLOATS):
            return None
        sig = types.void(data, index, X, types.int64, types.int64, out, types.int64,
                         types.int64, types.int64, bias, types.boolean)
        return sig, _codegen(lanes, fused)
    return _row_block


_BLOCKS = {(w, f): _make_intrinsic(w, f) for w in (8, 16, 32, 64) for f in (False, True)}
_b8f, _b8, _b16f, _b16 = _BLOCKS[8, True], _BLOCKS[8, False], _BLOCKS[16, True], _BLOCKS[16, False]
_b32f, _b32, _b64f, _b64 = (_BLOCKS[32, True], _BLOCKS[32, False], _BLOCKS[64, True],
                            _BLOCKS[64, False])


@numba.njit(cache=True, inline="always")
def _block(data, index, X, j0, j1, out, r, c0, width, bias, has_bias, fused):
    # The narrowest of 8/16/32/64 lanes that holds ``width`` columns.
    if width > 32:
        if fused:
            _b64f(data, index, X, j0, j1, out, r, c0, width, bias, has_bias)
        else:
            _b64(data, index, X, j0, j1, out, r, c0, width, bias, has_bias)
    elif width > 16:
        if fused:
            _b32f(data, index, X, j0, j1, out, r, c0, width, bias, has_bias)
        else:
            _b32(data, index, X, j0, j1, out, r, c0, width, bias, has_bias)
    elif width > 8:
        if fused:
            _b16f(data, index, X, j0, j1, out, r, c0, width, bias, has_bias)
        else:
            _b16(data, index, X, j0, j1, out, r, c0, width, bias, has_bias)
    elif fused:
        _b8f(data, index, X, j0, j1, out, r, c0, width, bias, has_bias)
    else:
        _b8(data, index, X, j0, j1, out, r, c0, width, bias, has_bias)


# Numba's cache keys a function on its own source file only: after editing
# this module, clear the caches of refcomp/kernels/sparse.py (its drivers
# inline row_block) or touch that file.
@numba.njit(cache=True, inline="always")
def row_block(data, index, X, j0, j1, out, r, bias, has_bias, fused):
    """Row r of ``out`` (all X.shape[1] columns) from the stored entries
    j0 .. j1-1: blocks of 64 columns, the rest in one block of 8/16/32/64
    lanes (module docstring).  ``bias`` float64 (rows,) (read only when
    ``has_bias``); ``fused`` as in the module docstring."""
    k = X.shape[1]
    c0 = 0
    while c0 < k:
        width = min(64, k - c0)
        _block(data, index, X, np.int64(j0), np.int64(j1), out, np.int64(r), np.int64(c0),
               np.int64(width), bias, has_bias, fused)
        c0 += 64


def _row_block_interpreted(data, index, X, j0, j1, out, r, bias, has_bias, fused):
    for t in range(X.shape[1]):
        acc = np.float64(0.0)
        for j in range(j0, j1):
            acc = madd(np.float64(data[j]), np.float64(X[index[j], t]), acc, fused)
        if has_bias:
            acc += bias[r]
        out[r, t] = acc


if numba.config.DISABLE_JIT:
    row_block = _row_block_interpreted   # noqa: F811  (intrinsics cannot be interpreted)


#: Whether spmm uses this kernel: with AVX-512 the masked loads and stores
#: are single instructions; without it LLVM expands them lane by lane and
#: the row sweeps of :mod:`refcomp.kernels.sparse` are faster (same bits).
ROWVEC_OK = has_feature("avx512f")
