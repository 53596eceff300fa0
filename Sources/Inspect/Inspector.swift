import Common
import Foundation
import Kernels
import NGPT
import Runs
import Tokenizer

/// Everything `ngpt-inspect` reports about one checkpoint (also its --json).
public struct InspectionReport: Codable, Sendable {
    public struct Embedding: Codable, Sendable {
        public var name: String
        public var rowNorms: Stats
        /// Cosine statistics and uniformity of the rows normalised to unit length.
        public var cosines: Geometry.PairwiseCosines
    }
    public struct LayerScales: Codable, Sendable {
        public var layer: Int
        public var alphaAttn: Stats, alphaMLP: Stats, sqk: Stats, su: Stats, sv: Stats
    }
    public struct Conditioning: Codable, Sendable {
        public var layer: Int
        /// Per head for W_q, W_k, W_v (their [d_k, d] row blocks); whole matrices for W_o, W_up, W_gate, W_down.
        public var query: [Double], key: [Double], value: [Double]
        public var output: Double, up: Double, gate: Double, down: Double
        /// Singular values (descending) of each matrix type, for the spectra plot.
        public var spectra: [String: [Double]]
    }
    public struct Neighbour: Codable, Sendable {
        public var token: String, piece: String, neighbours: [String], cosines: [Double]
    }
    public struct Hidden: Codable, Sendable {
        public var tokens: Int
        /// ‖h‖ after each block: exactly 1 for nGPT.
        public var blockNorms: [Stats]
        public var finalUniformity: Double
        /// E‖x_t − x_{t+1}‖² between the unit final states of adjacent positions (positive pairs).
        public var finalAlignment: Double
    }

    public var checkpoint: String
    public var model: String
    public var step: Int
    public var embeddings: [Embedding]
    public var scales: [LayerScales]
    public var szMean: Double?, szMax: Double?, szMin: Double?
    public var conditioning: [Conditioning]
    public var neighbours: [Neighbour]
    public var hidden: Hidden?
}

public enum Inspector {
    /// Reference values after training at 0.5B/1B scale (paper Fig. 6, Tables 4–5; design §4.1).
    public static let paperReference =
        "paper (0.5–1B, 100k steps): α_A ≈ 0.22–0.25, α_M ≈ 0.32–0.37, s_qk ≈ 1.4–1.5, s_u ≈ 1.1–1.2, s_ν ≈ "
        + "1.1–1.25, mean s_z ≈ 60"

    public static func inspect(_ loaded: LoadedModel, neighbours words: [String], text: String?, maxTokens: Int = 4096)
        throws -> InspectionReport
    {
        let model = loaded.model, c = model.config, m = model.matrices, d = c.dim, f = c.mlpHidden, V = c.vocabSize
        // Embeddings.
        var embeddings: [InspectionReport.Embedding] = []
        var unitIn: [Float] = []
        for (i, (name, table)) in [("tok_embeddings.weight", m.embeddingIn), ("output.weight", m.embeddingOut)]
            .enumerated()
        {
            let unit = Geometry.normalized(table, rows: V, cols: d)
            if i == 0 { unitIn = unit }
            embeddings.append(
                .init(
                    name: name, rowNorms: Stats(Geometry.rowNorms(table, rows: V, cols: d)),
                    cosines: Geometry.pairwise(unitRows: unit, rows: V, cols: d)))
        }
        // Learned scales (nGPT).
        var scales: [InspectionReport.LayerScales] = []
        var sz: [Double] = []
        if let e = model.learnedScales() {
            let stats = { (v: [Float]) in Stats(v.map(Double.init)) }
            for l in 0..<c.layers {
                scales.append(
                    .init(
                        layer: l, alphaAttn: stats(e.alphaAttn[l]), alphaMLP: stats(e.alphaMLP[l]),
                        sqk: stats(e.sqk[l]),
                        su: stats(e.su[l]), sv: stats(e.sv[l])))
            }
            sz = e.sz.map(Double.init)
        }
        // Conditioning.
        var conditioning: [InspectionReport.Conditioning] = []
        for (l, b) in m.blocks.enumerated() {
            func perHead(_ w: UnsafePointer<Float>) -> [Double] {
                (0..<c.heads).map { h in
                    Geometry.conditionNumber(Geometry.singularValues(w + h * c.headDim * d, rows: c.headDim, cols: d))
                }
            }
            var spectra: [String: [Double]] = [:]
            func whole(_ name: String, _ w: UnsafePointer<Float>, rows: Int) -> Double {
                let s = Geometry.singularValues(w, rows: rows, cols: d)
                spectra[name] = s
                return Geometry.conditionNumber(s)
            }
            let wo = whole("attn.wo", b.wo, rows: d), up = whole("mlp.w_up", b.up, rows: f)
            let gate = whole("mlp.w_gate", b.gate, rows: f), down = whole("mlp.w_down", b.down, rows: f)
            for (name, w) in [("attn.wq", b.wq), ("attn.wk", b.wk), ("attn.wv", b.wv)] {
                spectra[name] = Geometry.singularValues(w, rows: d, cols: d)
            }
            conditioning.append(
                .init(
                    layer: l, query: perHead(b.wq), key: perHead(b.wk), value: perHead(b.wv),
                    output: wo, up: up, gate: gate, down: down, spectra: spectra))
        }
        // Nearest neighbours in E_in.
        var neighbours: [InspectionReport.Neighbour] = []
        for word in words {
            let candidates = ["▁" + word, word]
            guard
                let (piece, id) = candidates.lazy.map({ ($0, loaded.tokenizer.id(ofPiece: $0)) }).first(where: {
                    $0.1 != loaded.tokenizer.unkId
                })
            else {
                throw UserError(
                    "\"\(word)\" is not a single token of this tokenizer (tried pieces \"▁\(word)\" and "
                        + "\"\(word)\"); choose words the vocabulary holds"
                )
            }
            let near = Geometry.nearest(unitRows: unitIn, rows: V, cols: d, to: Int(id), k: 5)
            neighbours.append(
                .init(
                    token: word, piece: piece,
                    neighbours: try near.map { try loaded.tokenizer.piece(ofId: Int32($0.row)) },
                    cosines: near.map(\.cosine)))
        }
        // Hidden states on real text.
        var hidden: InspectionReport.Hidden?
        if let text {
            var ids: [Int32] = loaded.tokenizer.bosId >= 0 ? [loaded.tokenizer.bosId] : []
            ids += try loaded.tokenizer.encode(text)
            let T = c.context, windows = min(max(1, maxTokens / T), (ids.count - 1) / T)
            guard windows >= 1 else { throw UserError("the text is shorter than one context window (\(T + 1) tokens)") }
            let inputs = Array(ids[0..<(windows * T)]), targets = Array(ids[1...(windows * T)])
            _ = model.forward(inputs: inputs, targets: targets, batch: windows)
            let n = windows * T
            let outputs = model.blockOutputs
            let norms = outputs.map { Stats(Geometry.rowNorms($0, rows: n, cols: d)) }
            let final = Geometry.normalized(outputs[outputs.count - 1], rows: n, cols: d)
            let pairs = (0..<n).filter { ($0 + 1) % T != 0 }.map { ($0, $0 + 1) }
            hidden = .init(
                tokens: n, blockNorms: norms,
                finalUniformity: Geometry.pairwise(unitRows: final, rows: n, cols: d).uniformity,
                finalAlignment: Geometry.alignment(unitRows: final, cols: d, pairs: pairs))
        }
        return InspectionReport(
            checkpoint: loaded.checkpointPath, model: c.kind.rawValue, step: loaded.step, embeddings: embeddings,
            scales: scales, szMean: sz.isEmpty ? nil : Stats(sz).mean, szMax: sz.max(), szMin: sz.min(),
            conditioning: conditioning, neighbours: neighbours, hidden: hidden)
    }
}
