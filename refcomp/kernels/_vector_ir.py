"""LLVM IR pieces shared by the vector intrinsics (:mod:`refcomp.kernels._sell`,
:mod:`refcomp.kernels._rowvec`)."""

from llvmlite import ir
from numba.core import cgutils

__all__ = ["splat", "multiply_add"]


def splat(builder, vec_t, value):
    """A vector of type ``vec_t`` with ``value`` in every lane."""
    i32 = ir.IntType(32)
    one = builder.insert_element(ir.Constant(vec_t, ir.Undefined), value, ir.Constant(i32, 0))
    return builder.shuffle_vector(one, ir.Constant(vec_t, ir.Undefined),
                                  ir.Constant(ir.VectorType(i32, vec_t.count), [0] * vec_t.count))


def multiply_add(builder, a, x, acc, fused):
    """Lane-wise ``acc + a*x`` of float64 vectors: one rounding (``llvm.fma``)
    when ``fused`` (callers set it only where every product is exact, so
    the bits equal the unfused form), else a multiply and an add, each
    rounded (half-even)."""
    if not fused:
        return builder.fadd(acc, builder.fmul(a, x))
    vec_t = acc.type
    fma = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vec_t, [vec_t, vec_t, vec_t]),
        f"llvm.fma.v{vec_t.count}f64")
    return builder.call(fma, [a, x, acc])
