import Foundation
import Kernels

/// Single-token inference with a KV cache: a forward pass separate from the training path, whose cost per token
/// grows linearly with the number of cached positions (one matrix–vector product per weight, plus attention over
/// the cache). Logits equal the full forward's at every position.
public protocol TokenDecoder: AnyObject {
    var config: ModelConfig { get }
    /// Tokens in the cache (the position the next token takes).
    var position: Int { get }
    /// Forgets the cache.
    func reset()
    /// Re-reads the model's weights (call after changing them; the decoder prepares its own copies).
    func refreshWeights()
    /// Appends `token` at `position` and returns the logits for the next token, [vocab].
    func step(_ token: Int32) -> UnsafeMutablePointer<Float>
}

/// Several independent streams decoded together (`LanguageModel.makeBatchDecoder`): each slot has its own KV
/// cache and position, and one step runs every row given to it through each weight matrix once (the weights are
/// read once per step, not once per stream). A stream's logits are the same bits alone or in any batch, and the
/// same as `TokenDecoder`'s: every row goes through the same arithmetic.
public protocol BatchDecoder: AnyObject {
    var config: ModelConfig { get }
    /// Streams this decoder holds caches for.
    var slots: Int { get }
    /// Rows one step takes at most.
    var maxRows: Int { get }
    /// Tokens in `slot`'s cache.
    func position(of slot: Int) -> Int
    /// Empties `slot`'s cache (a new stream starts there).
    func reset(slot: Int)
    /// Appends each row's token to its slot's cache, in order (a slot may take several rows: consecutive
    /// positions, as in a prompt), and returns the logits after each row, [rows.count, vocab].
    func step(_ rows: [DecodeRow]) -> UnsafeMutablePointer<Float>
}

/// One token of one stream in a batched step.
public struct DecodeRow: Sendable, Equatable {
    public var slot: Int, token: Int32
    public init(slot: Int, token: Int32) { self.slot = slot; self.token = token }
}

/// Weight precision of the single-token path.
public enum DecodePrecision: String, Sendable, CaseIterable {
    /// The model's Float weights: logits equal the training forward's (to rounding).
    case fp32
    /// bfloat16 copies of every matrix: half the bytes streamed per token, at ~3 significant digits per weight.
    /// With AVX512_BF16 the vector entering each product is rounded to bfloat16 too (one vdpbf16ps per 32
    /// weights, like a bf16 training GEMM); sums, attention, normalisations and the KV cache stay Float.
    case bf16
}

/// A weight matrix as the decoder reads it: the Float original, or a bfloat16 copy. The copy is stored as the
/// product uses it, [outputs, inputs] (transposed when the decoder multiplies by Aᵀ), so every bf16 product is a
/// dot product per row: one vdpbf16ps per 32 weights (`GEMM.gemvBF16`).
struct DecodeMatrix {
    let f32: UnsafePointer<Float>
    let b16: UnsafeMutablePointer<UInt16>?
    let rows: Int, cols: Int
    let scratch: UnsafeMutablePointer<Float>

    /// For each of `n` vectors (x and y rows of `inputs` and `outputs` floats): y = W·x (or Wᵀ·x), + beta·y.
    @inline(__always) func apply(
        transpose: Bool = false, n: Int = 1, _ x: UnsafePointer<Float>, beta: Float = 0,
        _ y: UnsafeMutablePointer<Float>
    ) {
        let (outputs, inputs) = transpose ? (cols, rows) : (rows, cols)
        if let b = b16 {
            GEMM.gemvBF16(rows: outputs, cols: inputs, b, vectors: n, x, beta: beta, y, scratch: scratch)
        } else {
            // Vector by vector: each stream's arithmetic is the single-stream one.
            for v in 0..<n {
                GEMM.gemv(
                    transpose: transpose, rows: rows, cols: cols, f32, lda: cols, x + v * inputs, beta: beta,
                    y + v * outputs)
            }
        }
    }
}

/// Owns the bfloat16 copies.
final class DecodeWeights {
    let precision: DecodePrecision
    private var buffers: [UnsafeMutablePointer<UInt16>] = []
    private let scratch: UnsafeMutablePointer<Float>
    /// `maxDimension`: the longest input of any product; `maxRows`: the vectors of one product.
    init(_ precision: DecodePrecision, maxDimension: Int, maxRows: Int) {
        self.precision = precision
        scratch = .allocate(capacity: max(2 * maxDimension + 64, maxRows * (maxDimension / 2 + 32)))
    }

    /// `p` is [rows, cols]; `transposed` when the decoder multiplies by its transpose (W_o, W_down).
    func matrix(_ p: UnsafePointer<Float>, rows: Int, cols: Int, transposed: Bool = false) -> DecodeMatrix {
        guard precision == .bf16 else {
            return DecodeMatrix(f32: p, b16: nil, rows: rows, cols: cols, scratch: scratch)
        }
        let b = UnsafeMutablePointer<UInt16>.allocate(capacity: rows * cols)
        if transposed {
            for r in 0..<rows { for c in 0..<cols { b[c * rows + r] = BFloat16.round(p[r * cols + c]) } }
        } else {
            BFloat16.convert(p, b, count: rows * cols)
        }
        buffers.append(b)
        return DecodeMatrix(f32: p, b16: b, rows: rows, cols: cols, scratch: scratch)
    }

    func clear() { buffers.forEach { $0.deallocate() }; buffers = [] }
    deinit { clear(); scratch.deallocate() }
}

/// Buffers shared by both decoders: a KV cache per slot and the activations of up to `maxRows` rows.
final class DecoderState {
    let config: ModelConfig
    let slots: Int, maxRows: Int
    let arena = Arena()
    let kCache: [[UnsafeMutablePointer<Float>]], vCache: [[UnsafeMutablePointer<Float>]]  // [slot][layer]: [T, d]
    let x, a, q, k, v, y, o: UnsafeMutablePointer<Float>  // [rows, d]
    let u, g: UnsafeMutablePointer<Float>  // [rows, F]
    let scores: UnsafeMutablePointer<Float>  // [workers, H, T]
    let logits: UnsafeMutablePointer<Float>  // [rows, V]
    let rstd: UnsafeMutablePointer<Float>  // [rows]
    var positions: [Int]
    /// The current step's rows: slot, position and token of each.
    var rowSlots: [Int] = [], rowPositions: [Int] = [], rowTokens: [Int32] = []

    init(_ c: ModelConfig, slots: Int, maxRows: Int) {
        config = c
        self.slots = slots
        self.maxRows = maxRows
        let d = c.dim, n = maxRows
        kCache = (0..<slots).map { [arena] _ in (0..<c.layers).map { _ in arena.floats(c.context * d) } }
        vCache = (0..<slots).map { [arena] _ in (0..<c.layers).map { _ in arena.floats(c.context * d) } }
        x = arena.floats(n * d); a = arena.floats(n * d); q = arena.floats(n * d); k = arena.floats(n * d)
        v = arena.floats(n * d); y = arena.floats(n * d); o = arena.floats(n * d)
        u = arena.floats(n * c.mlpHidden); g = arena.floats(n * c.mlpHidden)
        scores = arena.floats(Threads.maxWorkers * c.heads * c.context)
        logits = arena.floats(n * c.vocabSize)
        rstd = arena.floats(n)
        positions = [Int](repeating: 0, count: slots)
    }

    /// Takes the step's rows: each row's position follows its slot's cache (and the slot's earlier rows).
    func begin(_ rows: [DecodeRow]) {
        precondition(!rows.isEmpty && rows.count <= maxRows, "a step takes 1...\(maxRows) rows")
        rowSlots.removeAll(keepingCapacity: true)
        rowTokens.removeAll(keepingCapacity: true)
        rowPositions.removeAll(keepingCapacity: true)
        for r in rows {
            precondition(r.slot >= 0 && r.slot < slots, "slot \(r.slot) out of 0..<\(slots)")
            // the slot's position after its earlier rows in this step
            let t = positions[r.slot] + rowSlots.reduce(0) { $0 + ($1 == r.slot ? 1 : 0) }
            precondition(t < config.context, "the KV cache is full; reset or slide the window")
            rowSlots.append(r.slot)
            rowTokens.append(r.token)
            rowPositions.append(t)
        }
    }

    /// Ends the step: every slot's position advances by its rows.
    func end() { for slot in rowSlots { positions[slot] += 1 } }

    /// RoPE on row i of `x` ([rows, d]) at that row's position.
    func rotate(_ x: UnsafeMutablePointer<Float>, table: RoPETable) {
        let d = config.dim
        for (i, t) in rowPositions.enumerated() {
            RoPE.rotate(x + i * d, ld: d, rows: 1, heads: config.heads, context: 1, positionOffset: t, table: table)
        }
    }

    /// Copies each row's k and v ([rows, d]) into its slot's cache of `layer` at its position.
    func cache(layer l: Int, k: UnsafePointer<Float>, v: UnsafePointer<Float>) {
        let d = config.dim
        for (i, (slot, t)) in zip(rowSlots, rowPositions).enumerated() {
            (kCache[slot][l] + t * d).update(from: k + i * d, count: d)
            (vCache[slot][l] + t * d).update(from: v + i * d, count: d)
        }
    }

    /// y = softmax(scale · q̃·K̃ᵀ)·V for each row over its slot's cached positions 0...position, per head; the
    /// rows of a batch split over the workers (each with its own scores).
    func attend(layer l: Int, scale: Float) {
        let c = config, d = c.dim, perWorker = c.heads * c.context
        let bytesPerRow = 8 * c.context * d  // reads of the slot's K and V at the full context
        rowSlots.withUnsafeBufferPointer { slots in
            rowPositions.withUnsafeBufferPointer { positions in
                Threads.parallelFor(slots.count, workPerItem: bytesPerRow, minWork: 1 << 16) { worker, rows in
                    for i in rows {
                        Attention.decode(
                            q: q + i * d, kCache: kCache[slots[i]][l], vCache: vCache[slots[i]][l], ld: d,
                            count: positions[i] + 1, heads: c.heads, headDim: c.headDim, scale: scale,
                            scores: scores + worker * perWorker, y: y + i * d)
                    }
                }
            }
        }
    }

    /// SwiGLU row by row (so a row's arithmetic does not depend on where it sits in the batch).
    func swiGLU(rows n: Int) {
        let f = config.mlpHidden
        for i in 0..<n { SwiGLU.forward(u: u + i * f, gate: g + i * f, u + i * f, count: f) }
    }
}

/// Matrices that read the same input, each into its own output (q, k and v; SwiGLU's up and gate). With bf16
/// copies they run as one product over all their rows (`GEMM.gemvBF16`'s group: one fork per token instead of
/// one per matrix); the bits of applying each on its own.
struct DecodeGroup {
    let matrices: [DecodeMatrix]
    let outputs: [UnsafeMutablePointer<Float>]
    private let parts: [GEMM.GemvRows]?  // every matrix's bf16 rows, or nil when any is Float

    init(_ matrices: [DecodeMatrix], outputs: [UnsafeMutablePointer<Float>]) {
        self.matrices = matrices
        self.outputs = outputs
        let copies = matrices.compactMap(\.b16)
        parts =
            copies.count == matrices.count
            ? zip(zip(copies, matrices), outputs).map { GEMM.GemvRows($0.0, rows: $0.1.rows, $1) } : nil
    }

    /// For each of `n` input rows x (`cols` floats each): output_g = W_g·x, rows of W_g.rows floats.
    func apply(n: Int, _ x: UnsafePointer<Float>) {
        guard let parts, let first = matrices.first else {
            for (m, y) in zip(matrices, outputs) { m.apply(n: n, x, y) }
            return
        }
        parts.withUnsafeBufferPointer {
            GEMM.gemvBF16($0, cols: first.cols, vectors: n, x, scratch: first.scratch)
        }
    }
}

/// A layer's matrices as the decoder reads them.
struct DecodeLayer {
    let qkv: DecodeGroup  // W_q, W_k, W_v [d, d] into the state's q, k, v
    let wo: DecodeMatrix  // [d, d]
    let upGate: DecodeGroup  // W_up, W_gate [F, d] into the state's u, g
    let down: DecodeMatrix  // [F, d]
}

extension DecodeWeights {
    /// A layer's seven matrices (d and F from `c`), the products that share an input writing into `s`'s buffers;
    /// the up and gate matrices may be folded copies (nGPT).
    func layer(
        _ c: ModelConfig, _ s: DecoderState, wq: UnsafePointer<Float>, wk: UnsafePointer<Float>,
        wv: UnsafePointer<Float>, wo: UnsafePointer<Float>, up: UnsafePointer<Float>, gate: UnsafePointer<Float>,
        down: UnsafePointer<Float>
    ) -> DecodeLayer {
        let d = c.dim, f = c.mlpHidden
        return DecodeLayer(
            qkv: DecodeGroup(
                [matrix(wq, rows: d, cols: d), matrix(wk, rows: d, cols: d), matrix(wv, rows: d, cols: d)],
                outputs: [s.q, s.k, s.v]),
            wo: matrix(wo, rows: d, cols: d, transposed: true),
            upGate: DecodeGroup([matrix(up, rows: f, cols: d), matrix(gate, rows: f, cols: d)], outputs: [s.u, s.g]),
            down: matrix(down, rows: f, cols: d, transposed: true))
    }
}

/// What both decoders hold: the model, the caches and activations, the (bfloat16) weight copies, per-layer
/// matrices and the output matrix. Each model's decoder adds `loadWeights` (which matrices it reads) and
/// `forward` (one step over the rows `s.begin` took). One stream (`TokenDecoder`) is slot 0 of a one-slot decoder.
class MatrixDecoder<Model: LanguageModel> {
    let model: Model
    let s: DecoderState
    let weights: DecodeWeights
    var layers: [DecodeLayer] = []
    var output: DecodeMatrix?
    var config: ModelConfig { s.config }
    var slots: Int { s.slots }
    var maxRows: Int { s.maxRows }
    var position: Int { s.positions[0] }

    init(_ model: Model, precision: DecodePrecision, slots: Int = 1, maxRows: Int = 1) {
        self.model = model
        let c = model.config
        s = DecoderState(c, slots: slots, maxRows: max(maxRows, 1))
        weights = DecodeWeights(
            precision, maxDimension: max(c.vocabSize, c.mlpHidden, c.dim), maxRows: max(maxRows, 1))
        refreshWeights()
    }

    func position(of slot: Int) -> Int { s.positions[slot] }
    func reset(slot: Int) { s.positions[slot] = 0 }
    func reset() { for slot in 0..<s.slots { s.positions[slot] = 0 } }

    /// Re-reads the model's weights (after an optimiser step) and empties the caches.
    func refreshWeights() {
        reset()
        weights.clear()
        loadWeights()
    }

    /// Sets `layers` and `output` from the model's current weights.
    func loadWeights() { preconditionFailure("each decoder loads its model's weights") }

    /// The step over `s`'s current rows, leaving their logits in `s.logits`.
    func forward(rows n: Int) { preconditionFailure("each decoder has its forward") }

    func step(_ rows: [DecodeRow]) -> UnsafeMutablePointer<Float> {
        s.begin(rows)
        forward(rows: rows.count)
        s.end()
        return s.logits
    }

    func step(_ token: Int32) -> UnsafeMutablePointer<Float> { step([DecodeRow(slot: 0, token: token)]) }
}

final class NGPTDecoder: MatrixDecoder<NGPTModel>, TokenDecoder, BatchDecoder {
    override func loadWeights() {
        model.computeEffectiveScales()  // also refolds s_z, s_u, s_ν into the scaled weight copies
        let c = config
        layers = model.w.blocks.indices.map { l in
            let b = model.w.blocks[l]
            return weights.layer(
                c, s, wq: b.wq, wk: b.wk, wv: b.wv, wo: b.wo, up: model.scaled.up[l], gate: model.scaled.gate[l],
                down: b.wDown)
        }
        output = weights.matrix(model.scaled.output, rows: c.vocabSize, cols: c.dim)
    }

    /// Rows [n, d] throughout; design §4.1 with the scales folded as in training.
    override func forward(rows n: Int) {
        let c = config, d = c.dim, H = c.heads, dk = c.headDim
        let e = model.effective
        Embedding.forward(table: model.w.tokEmbeddings, ids: s.rowTokens, count: n, dim: d, vocab: c.vocabSize, s.x)
        for l in 0..<c.layers {
            let w = layers[l]
            // attention: A = Norm(h); q, k, v = W·h; RoPE; per-head Norm × s_qk; cache k̃, v
            RowNorm.l2Forward(s.x, s.a, invNorm: nil, rows: n, cols: d)
            w.qkv.apply(n: n, s.x)
            s.rotate(s.q, table: model.rope)
            s.rotate(s.k, table: model.rope)
            RowNorm.l2Forward(s.q, s.q, invNorm: nil, rows: n * H, cols: dk)
            RowNorm.l2Forward(s.k, s.k, invNorm: nil, rows: n * H, cols: dk)
            e.sqk[l].withUnsafeBufferPointer { sq in
                Columns.scale(s.q, by: sq.baseAddress.unsafelyUnwrapped, s.q, rows: n, cols: d)
                Columns.scale(s.k, by: sq.baseAddress.unsafelyUnwrapped, s.k, rows: n, cols: d)
            }
            s.cache(layer: l, k: s.k, v: s.v)
            s.attend(layer: l, scale: Float(dk).squareRoot())
            // h_A = Norm(y·W_o); h ← Norm(A + α_A ⊙ (h_A − A))
            w.wo.apply(transpose: true, n: n, s.y, s.o)
            RowNorm.l2Forward(s.o, s.o, invNorm: nil, rows: n, cols: d)
            e.alphaA[l].withUnsafeBufferPointer {
                Columns.lerp(s.a, s.o, alpha: $0.baseAddress.unsafelyUnwrapped, s.x, rows: n, cols: d)
            }
            RowNorm.l2Forward(s.x, s.x, invNorm: nil, rows: n, cols: d)
            // MLP with the folded scales: u = (diag(s_u)W_up)·h, ν = (diag(√d·s_ν)W_gate)·h
            RowNorm.l2Forward(s.x, s.a, invNorm: nil, rows: n, cols: d)
            w.upGate.apply(n: n, s.x)
            s.swiGLU(rows: n)
            w.down.apply(transpose: true, n: n, s.u, s.o)
            RowNorm.l2Forward(s.o, s.o, invNorm: nil, rows: n, cols: d)
            e.alphaM[l].withUnsafeBufferPointer {
                Columns.lerp(s.a, s.o, alpha: $0.baseAddress.unsafelyUnwrapped, s.x, rows: n, cols: d)
            }
            RowNorm.l2Forward(s.x, s.x, invNorm: nil, rows: n, cols: d)
        }
        // z = (diag(s_z)E_out)·h
        output?.apply(n: n, s.x, s.logits)
    }
}

final class GPTDecoder: MatrixDecoder<GPTModel>, TokenDecoder, BatchDecoder {
    override func loadWeights() {
        let c = config
        layers = model.w.blocks.map { b in
            weights.layer(c, s, wq: b.wq, wk: b.wk, wv: b.wv, wo: b.wo, up: b.wUp, gate: b.wGate, down: b.wDown)
        }
        output = weights.matrix(model.w.output, rows: c.vocabSize, cols: c.dim)
    }

    /// Rows [n, d] throughout; design §4.2.
    override func forward(rows n: Int) {
        let c = config, d = c.dim, dk = c.headDim
        let p = model.w, rstd = s.rstd
        Embedding.forward(table: p.tokEmbeddings, ids: s.rowTokens, count: n, dim: d, vocab: c.vocabSize, s.x)
        for l in 0..<c.layers {
            let w = layers[l], gains = p.blocks[l]
            RowNorm.rmsForward(s.x, gain: gains.attnNorm, s.a, rstd: rstd, rows: n, cols: d, eps: GPTModel.rmsEps)
            w.qkv.apply(n: n, s.a)
            s.rotate(s.q, table: model.rope)
            s.rotate(s.k, table: model.rope)
            s.cache(layer: l, k: s.k, v: s.v)
            s.attend(layer: l, scale: 1 / Float(dk).squareRoot())
            // h += y·W_o
            w.wo.apply(transpose: true, n: n, s.y, beta: 1, s.x)
            RowNorm.rmsForward(s.x, gain: gains.mlpNorm, s.a, rstd: rstd, rows: n, cols: d, eps: GPTModel.rmsEps)
            w.upGate.apply(n: n, s.a)
            s.swiGLU(rows: n)
            w.down.apply(transpose: true, n: n, s.u, beta: 1, s.x)
        }
        RowNorm.rmsForward(s.x, gain: p.norm, s.a, rstd: rstd, rows: n, cols: d, eps: GPTModel.rmsEps)
        output?.apply(n: n, s.a, s.logits)
    }
}
