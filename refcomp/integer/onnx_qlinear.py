"""Import ONNX graphs in the QLinear (operator) form: QLinearConv, QLinearMatMul,
QLinearAdd (``com.microsoft``), and the code-level operators around them.

A QLinear graph computes on integer codes between a first QuantizeLinear and a last
DequantizeLinear.  Each QLinear operator is, by its ONNX definition, the float operator
between a DequantizeLinear of its inputs and a QuantizeLinear of its output with the same
scales and zero points (ONNX Operators.md, QLinearConv: "y = saturate(round(x_f * w_f /
y_scale) + y_zero_point)" with x_f, w_f the dequantized operands).  This module rewrites
the graph into that QDQ form, node by node and without changing a single parameter, and
hands it to :func:`refcomp.integer.load_qdq`, which builds the integer layers:

- ``QLinearConv(x, xs, xz, w, ws, wz, ys, yz[, B])`` -> ``DQ(x) -> Conv(DQ(w), DQ(B)) -> Q``,
  the int32 bias dequantized with scale ``float32(xs) * float32(ws)`` (the scale ONNX
  defines for it), so the integer layer gets the int32 codes unchanged;
- ``QLinearMatMul(a, as, az, b, bs, bz, ys, yz)`` -> ``DQ(a) -> MatMul(DQ(b)) -> Q``;
- ``QGemm(A, as, az, B, bs, bz[, C, ys, yz])`` (``com.microsoft``, what ONNX Runtime's
  ``quantize_static`` writes for Gemm in the QOperator format) -> ``Gemm(DQ(A), DQ(B),
  DQ(C)) -> Q`` with ``alpha``/``transA``/``transB`` kept, the int32 ``C`` dequantized
  with scale ``float32(as) * float32(bs)``;
- ``QLinearAdd(a, as, az, b, bs, bz, cs, cz)`` -> ``Add(DQ(a), DQ(b)) -> Q``;
- ``MaxPool``, ``Flatten``, ``Reshape``, ``Transpose``, ``Squeeze``, ``Unsqueeze`` on codes
  (order-preserving, parameter-preserving) -> ``DQ -> op -> Q`` with the input's
  parameters;
- ``Max`` / ``Min`` of codes and a constant code (a clamp written on codes, e.g. a fused
  ReLU6) -> the float ``Relu`` (lower bound at the zero point, no upper bound) or ``Clip``
  whose bounds are the dequantized constants, before the QuantizeLinear that realises it.

Anything else that consumes codes is refused with a FormatError naming the node.
"""

import numpy as np

from .._errors import FormatError
from ..io._format import _one_line
from ..io.onnx import _check_initializer

__all__ = ["qlinear_to_qdq", "QLINEAR_OPS", "const_values", "scalar_param"]

#: Operators on codes that this rewrite turns into their float form.
QLINEAR_OPS = ("QLinearConv", "QLinearMatMul", "QGemm", "QLinearAdd")
_PASS = ("MaxPool", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze")


def const_values(g, source="ONNX graph"):
    """``{name: ndarray}`` of a graph's initializers and Constant nodes.

    Each tensor's declared size is checked against its stored bytes before it is
    converted (:func:`refcomp.io.onnx.load`'s check), so a tensor that lies about its
    shape or has an unknown element type is refused (FormatError naming ``source``
    and the tensor) instead of allocating or failing inside ``onnx``.
    """
    from onnx import numpy_helper
    tensors = [(t.name, t, "initializer") for t in g.initializer]
    for n in g.node:
        if n.op_type == "Constant" and len(n.output):
            tensors.extend((n.output[0], a.t, f"Constant node {n.name!r}")
                           for a in n.attribute if a.name == "value")
    vals = {}
    for name, t, what in tensors:
        _check_initializer(t, source)
        try:
            vals[name] = numpy_helper.to_array(t)
        except Exception as exc:  # noqa: BLE001 (onnx raises bare ValueError/TypeError/...)
            raise FormatError(f"{source}: {what} {name!r} is not a readable tensor "
                              f"(data type {t.data_type}, dims {list(t.dims)}: "
                              f"{type(exc).__name__}: {_one_line(exc)[:120]})") from None
    return vals


def scalar_param(consts, name, where, what):
    """The one value (0-d array) of the constant ``name``; FormatError naming ``where``
    when it is not a constant or holds more or fewer than one value (per-tensor)."""
    if name not in consts:
        raise FormatError(f"{where}: the {what} {name!r} is not a constant")
    v = np.asarray(consts[name])
    if v.size != 1:
        raise FormatError(f"{where}: the {what} {name!r} must hold one value (per-tensor), "
                          f"has shape {v.shape}")
    return v.reshape(())


def _need(n, k, where):
    if len(n.input) < k or len(n.output) < 1:
        raise FormatError(f"{where}: needs {k} inputs and an output, has {len(n.input)} "
                          f"inputs and {len(n.output)} outputs")


def qlinear_to_qdq(proto):
    """The QDQ form of a QLinear ONNX graph (a new ModelProto; ``proto`` unchanged).

    Parameters
    ----------
    proto : onnx.ModelProto

    Returns
    -------
    onnx.ModelProto
        The same computation with every QLinear operator replaced by
        DequantizeLinear -> float operator -> QuantizeLinear (see the module
        docstring); every scale and zero point is the original initializer.

    Raises
    ------
    FormatError
        A node that consumes codes and is none of the supported operators, or a
        clamp whose bound is not a constant.
    """
    import onnx
    from onnx import helper, numpy_helper

    g = proto.graph
    consts = const_values(g)
    params = {}              # code tensor -> (scale name, zero-point name)
    nodes, inits = [], []
    count = [0]

    def fresh(base):
        count[0] += 1
        return f"{base}__qdq{count[0]}"

    def dq(code, axis=None):
        if code not in params:
            raise FormatError(f"input {code!r} is not the integer codes of a QuantizeLinear "
                              "or of a QLinear operator")
        s, z = params[code]
        out = fresh(code + "_f")
        kw = {} if axis is None else {"axis": axis}
        nodes.append(helper.make_node("DequantizeLinear", [code, s, z], [out], **kw))
        return out

    def dq_const(name, scale, zero, axis):
        out = fresh(name + "_f")
        nodes.append(helper.make_node("DequantizeLinear", [name, scale, zero], [out],
                                      axis=axis))
        return out

    def q(float_name, out, s, z):
        nodes.append(helper.make_node("QuantizeLinear", [float_name, s, z], [out]))
        params[out] = (s, z)

    def init(name, value):
        n = fresh(name)
        inits.append(numpy_helper.from_array(np.asarray(value), n))
        return n

    def attrs(node):
        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def float_node(op, inputs, out, like, **kw):
        # the original attributes copied as they are (re-making them from values fails on
        # an empty list, whose type make_attribute cannot infer)
        node = helper.make_node(op, inputs, [out], **kw)
        node.attribute.extend(like.attribute)
        nodes.append(node)

    def scalar(name, where, what):
        return scalar_param(consts, name, where, what)

    def dq_as(code, s, z):
        out = fresh(code + "_f")
        nodes.append(helper.make_node("DequantizeLinear", [code, s, z], [out]))
        return out

    def clamp(n, ins, where):
        """A Max/Min of codes and a constant code as the float Relu/Clip it realises."""
        if len(ins) != 2 or ins[1] not in consts:
            raise FormatError(f"{where}: a clamp of codes needs one constant bound")
        s_name, z_name = params[ins[0]]
        scale = np.float32(scalar(s_name, where, "scale of the clamped codes"))
        zero = int(scalar(z_name, where, "zero point of the clamped codes"))
        code = int(scalar(ins[1], where, "clamp bound"))
        xf, yf = dq(ins[0]), fresh(n.output[0] + "_f")
        if n.op_type == "Max" and code == zero:
            nodes.append(helper.make_node("Relu", [xf], [yf]))
        else:
            # (code - zero) * scale: one float32 rounding; quantizing it gives back
            # ``code`` (the rounding error is far below half a step).
            bound = np.float32(np.float32(code - zero) * scale)
            lo = bound if n.op_type == "Max" else np.float32(-np.inf)
            hi = bound if n.op_type == "Min" else np.float32(np.inf)
            nodes.append(helper.make_node("Clip", [xf, init("clip_min", lo),
                                                   init("clip_max", hi)], [yf]))
        q(yf, n.output[0], s_name, z_name)

    def rewrite(n, op, ins, where):
        if op == "QuantizeLinear" and ins and ins[0] not in params:
            _need(n, 3, where)
            nodes.append(n)
            params[n.output[0]] = (ins[1], ins[2])
        elif op == "DequantizeLinear":
            nodes.append(n)
        elif op == "QLinearConv":
            _need(n, 8, where)
            x, xs, xz, w, ws, wz, ys, yz = ins[:8]
            wf = dq_const(w, ws, wz, 0)
            operands = [dq(x), wf]
            if len(ins) > 8 and ins[8]:
                if ins[8] not in consts or ws not in consts:
                    raise FormatError(f"{where}: bias and scales must be constants")
                # ONNX: the int32 bias has scale x_scale * w_scale, zero point 0.
                bs = (np.float32(scalar(xs, where, "input scale")) *
                      np.asarray(consts[ws], np.float32).reshape(-1)).astype(np.float32)
                nb = np.asarray(consts[ins[8]]).size
                operands.append(dq_const(ins[8], init("bias_scale", np.broadcast_to(bs, (nb,))),
                                         init("bias_zero", np.zeros(nb, np.int32)), 0))
            float_node("Conv", operands, fresh(n.output[0] + "_f"), n)
            q(nodes[-1].output[0], n.output[0], ys, yz)
        elif op == "QGemm":
            _need(n, 9, where)
            a, as_, az, b, bs, bz = ins[:6]
            at = attrs(n)
            if not ins[7]:
                raise FormatError(f"{where}: a QGemm with a float output is not supported")
            # B's per-channel scale runs along the output axis: 0 for B (N, K) (transB=1).
            bf = dq_const(b, bs, bz, 0 if at.get("transB", 0) else 1)
            operands = [dq(a), bf]
            if ins[6]:
                if ins[6] not in consts or bs not in consts:
                    raise FormatError(f"{where}: bias and scales must be constants")
                cscale = (np.float32(scalar(as_, where, "input scale")) *
                          np.asarray(consts[bs], np.float32).reshape(-1)).astype(np.float32)
                nc = np.asarray(consts[ins[6]]).size
                operands.append(dq_const(ins[6], init("bias_scale",
                                                      np.broadcast_to(cscale, (nc,))),
                                         init("bias_zero", np.zeros(nc, np.int32)), 0))
            float_node("Gemm", operands, fresh(n.output[0] + "_f"), n)
            q(nodes[-1].output[0], n.output[0], ins[7], ins[8])
        elif op == "QLinearMatMul":
            _need(n, 8, where)
            a, as_, az, b, bs, bz, ys, yz = ins[:8]
            # B is an activation (codes) or constant weights with a per-column scale.
            bf = dq(b) if b in params else dq_const(b, bs, bz, 1)
            yf = fresh(n.output[0] + "_f")
            nodes.append(helper.make_node("MatMul", [dq(a), bf], [yf]))
            q(yf, n.output[0], ys, yz)
        elif op == "QLinearAdd":
            _need(n, 8, where)
            a, as_, az, b, bs, bz, cs, cz = ins[:8]
            fa, fb = dq_as(a, as_, az), dq_as(b, bs, bz)
            yf = fresh(n.output[0] + "_f")
            nodes.append(helper.make_node("Add", [fa, fb], [yf]))
            q(yf, n.output[0], cs, cz)
        elif op in _PASS and ins and ins[0] in params:
            _need(n, 1, where)
            s, z = params[ins[0]]
            float_node(op, [dq(ins[0])] + ins[1:], fresh(n.output[0] + "_f"), n, name=n.name)
            q(nodes[-1].output[0], n.output[0], s, z)
        elif op in ("Max", "Min") and ins and ins[0] in params:
            _need(n, 2, where)
            clamp(n, ins, where)
        elif any(x in params for x in ins):
            raise FormatError(f"{where}: operator on integer codes that the QLinear import "
                              f"does not support (supported: {', '.join(QLINEAR_OPS + _PASS)}, "
                              "Max/Min clamps)")
        else:
            nodes.append(n)

    for n in g.node:
        op, ins = n.op_type, list(n.input)
        where = f"node {n.name or (n.output[0] if len(n.output) else '')!r} ({op})"
        try:
            rewrite(n, op, ins, where)
        except FormatError as exc:
            msg = _one_line(exc)
            raise FormatError(msg if msg.startswith(where) else f"{where}: {msg}") from None
        except (LookupError, ValueError, TypeError, ArithmeticError) as exc:
            # what the checks above do not name (e.g. a malformed attribute value)
            raise FormatError(f"{where}: malformed node ({type(exc).__name__}: "
                              f"{_one_line(exc)[:160]})") from None
    new = helper.make_graph(nodes, g.name or "qlinear", list(g.input), list(g.output),
                            list(g.initializer) + inits)
    out = helper.make_model(new, opset_imports=[o for o in proto.opset_import
                                                if o.domain in ("", "ai.onnx")])
    out.ir_version = proto.ir_version
    if not any(o.domain in ("", "ai.onnx") for o in out.opset_import):
        out.opset_import.append(onnx.helper.make_opsetid("", 21))
    return out
