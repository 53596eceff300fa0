import Common
import Foundation
import Kernels
import Testing

@testable import NGPT

/// The fixture written by Tests/Reference/reference.py (independent PyTorch float64 implementation).
struct Fixture {
    let file: SafeTensors
    let config: ModelConfig
    let batch: Int
    let inputs: [Int32], targets: [Int32]

    /// `variant`: "ngpt", "gpt" or "ngpt-nu" (nGPT with the νGPT parameterization), the fixture's file name.
    init(_ variant: String) throws {
        guard let url = Bundle.module.url(forResource: "Fixtures/\(variant)", withExtension: "safetensors") else {
            throw UserError("fixture \(variant).safetensors missing from the test bundle")
        }
        file = try SafeTensors(path: url.path)
        let meta =
            try JSONSerialization.jsonObject(with: Data((file.metadata["config"] ?? "{}").utf8)) as? [String: Int]
            ?? [:]
        config = ModelConfig(
            kind: variant == "gpt" ? .gpt : .ngpt, vocabSize: meta["vocab"] ?? 0, dim: meta["dim"] ?? 0,
            layers: meta["layers"] ?? 0, heads: meta["heads"] ?? 0, mlpHidden: meta["mlp_hidden"] ?? 0,
            context: meta["context"] ?? 0, parameterization: variant == "ngpt-nu" ? .nu : .paper)
        batch = meta["batch"] ?? 0
        inputs = try file.integers("inputs").map { Int32($0) }
        targets = try file.integers("targets").map { Int32($0) }
    }

    /// A model holding the fixture's weights.
    func model() throws -> LanguageModel {
        let m = try makeModel(config)
        for t in m.layout.tensors {
            let values = try file.floats(t.name)
            #expect(values.count == t.count, "\(t.name)")
            (m.params.pointer + t.offset).update(from: values, count: t.count)
        }
        return m
    }
}

/// max |a − b| / max |b| over a tensor (norm-wise relative error; see the kernel tests for why not elementwise).
func normwiseError(_ a: UnsafePointer<Float>, _ b: [Double]) -> Double {
    var worst = 0.0, scale = 1e-30
    for i in b.indices { worst = max(worst, abs(Double(a[i]) - b[i])); scale = max(scale, abs(b[i])) }
    return worst / scale
}

@Suite(.serialized) struct ReferenceFixtureTests {
    /// Float32 forward and backward through two blocks against a float64 reference: rounding is ~1e-7 per
    /// operation and a few hundred operations deep, so 1e-4 of each tensor's largest magnitude is the bound
    /// (the worst seen is reported by the test name's issue if it fails).
    static let tolerance = 1e-4

    @Test(arguments: ["ngpt", "gpt", "ngpt-nu"])
    func logitsLossAndEveryGradientMatchPyTorch(kind: String) throws {
        let fx = try Fixture(kind)
        let model = try fx.model()
        let loss = model.forward(inputs: fx.inputs, targets: fx.targets, batch: fx.batch)
        let refLoss = try fx.file.doubles("loss")[0]
        #expect(abs(loss - refLoss) / refLoss < Self.tolerance)
        let logitErr = normwiseError(model.logits, try fx.file.doubles("logits"))
        #expect(logitErr < Self.tolerance, "logits \(logitErr)")
        model.grads.zero()
        model.backward(lossScale: 1)
        var worst = (name: "", error: 0.0)
        for t in model.layout.tensors {
            let err = normwiseError(model.grads.pointer + t.offset, try fx.file.doubles("grad." + t.name))
            if err > worst.error { worst = (t.name, err) }
            #expect(err < Self.tolerance, "gradient of \(t.name): \(err)")
        }
        print(
            "\(kind) vs PyTorch: loss \(loss) (ref \(refLoss)), logits \(logitErr), worst gradient "
                + "\(worst.name) \(worst.error)"
        )
    }

    /// Five steps at lr 1e-2 (νGPT: times each group's width multiplier, as the trainer applies them).
    @Test(arguments: ["ngpt", "gpt", "ngpt-nu"])
    func fiveOptimiserStepsMatchPyTorch(kind: String) throws {
        let fx = try Fixture(kind)
        let model = try fx.model()
        let opt = AdamW(
            layout: model.layout, settings: .init(weightDecay: kind == "gpt" ? 0.1 : 0),
            multipliers: fx.config.recipe.multipliers(model.layout, dim: fx.config.dim))
        let reference = try fx.file.doubles("losses5")
        var losses: [Double] = []
        for _ in 0..<5 {
            model.grads.zero()
            losses.append((model.forward(inputs: fx.inputs, targets: fx.targets, batch: fx.batch)))
            model.backward(lossScale: 1)
            _ = opt.update(model, lr: 1e-2)
        }
        for (ours, ref) in zip(losses, reference) {
            #expect(abs(ours - ref) / ref < Self.tolerance, "\(losses) vs \(reference)")
        }
        var worst = 0.0
        for t in model.layout.tensors {
            worst = max(worst, normwiseError(model.params.pointer + t.offset, try fx.file.doubles("final." + t.name)))
        }
        // Adam divides by √v: entries with tiny gradients amplify rounding, so the weights after five steps get a
        // looser, still tight, bound: 1e-3 of the tensor's largest entry (an lr-sized step is 1e-2).
        #expect(worst < 1e-3, "final weights \(worst)")
        print("\(kind) 5 steps: losses \(losses.map { String(format: "%.6f", $0) }), final weights \(worst)")
    }
}

@Suite struct GradientCheckTests {
    /// Every parameter tensor's gradient against central finite differences of the Float forward, as directional
    /// derivatives: for a random ±1 direction u over the whole tensor, (L(θ+hu) − L(θ−hu)) / 2h must equal ⟨g, u⟩;
    /// the error is judged relative to ‖g‖₂ (the size of ⟨g, u⟩ for random signs). Three directions per tensor.
    ///
    /// Tolerance. The forward runs in Float: its loss (reduced in Double) carries ~1e-7 relative rounding from
    /// the Float sums inside, i.e. ~2.5e-7 absolute at L ≈ 2.5, which a difference quotient with h = 3e-3
    /// turns into ~4e-5 — about 1e-3 of a typical ‖g‖₂ here. Truncation grows as (h·‖u‖)²: ≈1e-3 for the
    /// largest tensors. Measured on this machine, the worst tensor sits at 2.8e-3 (h = 1e-2 is truncation-bound
    /// at 3e-2, h = 1e-3 noise-bound at 1e-2), so the bound is 1e-2; a wrong term in any backward formula
    /// gives an O(1) error. The tight check is the float64 PyTorch fixture above (≤1e-6 on every gradient).
    @Test(arguments: [(ModelKind.ngpt, Parameterization.paper), (.ngpt, .nu), (.gpt, .paper)])
    func everyTensorMatchesFiniteDifferences(kind: ModelKind, parameterization: Parameterization) throws {
        let config = ModelConfig(
            kind: kind, vocabSize: 11, dim: 8, layers: 2, heads: 2, mlpHidden: 12, context: 6,
            parameterization: parameterization)
        let model = try makeModel(config)
        model.initialize(seed: 5)
        var rng = SplitMix64(seed: 9)
        // Move scale vectors and gains away from their init (and make one α negative).
        for t in model.layout.tensors where t.shape.count == 1 {
            let p = model.params.pointer + t.offset
            for i in 0..<t.count { p[i] *= Float(1 + 0.3 * rng.normal()) }
            if t.name.contains("alpha") { p[0] = -p[0] }
        }
        if kind == .gpt {  // a larger std so the GPT arm is not near-linear
            for t in model.layout.tensors where t.shape.count == 2 {
                let p = model.params.pointer + t.offset
                for i in 0..<t.count { p[i] *= 4 }
            }
        }
        let batch = 2, n = batch * config.context
        let inputs = (0..<n).map { _ in Int32(rng.below(11)) }, targets = (0..<n).map { _ in Int32(rng.below(11)) }
        model.grads.zero()
        _ = model.forward(inputs: inputs, targets: targets, batch: batch)
        model.backward(lossScale: 1)
        let analytic = model.grads.array
        var report: [String] = []
        for t in model.layout.tensors {
            let g = analytic[t.offset..<(t.offset + t.count)].map(Double.init)
            let gNorm = g.reduce(0) { $0 + $1 * $1 }.squareRoot()
            var worst = 0.0
            for _ in 0..<3 {
                let u: [Float] = (0..<t.count).map { _ in rng.below(2) == 0 ? -1 : 1 }
                let p = model.params.pointer + t.offset
                let saved = Array(UnsafeBufferPointer(start: p, count: t.count))
                // νGPT's raw scale vectors are ~0.03 and act 33× amplified: the step shrinks with them so that the
                // truncation error stays as small as the paper parameterization's (raw ~1/√8 here).
                let rms = (saved.reduce(0) { $0 + $1 * $1 } / Float(t.count)).squareRoot()
                let h: Float = t.shape.count == 1 ? 3e-3 * min(1, rms * Float(8).squareRoot()) : 3e-3
                for i in 0..<t.count { p[i] = saved[i] + h * u[i] }
                let lp = model.forward(inputs: inputs, targets: targets, batch: batch)
                for i in 0..<t.count { p[i] = saved[i] - h * u[i] }
                let lm = model.forward(inputs: inputs, targets: targets, batch: batch)
                p.update(from: saved, count: t.count)
                let fd = (lp - lm) / (2 * Double(h))
                let exact = zip(g, u).reduce(0) { $0 + $1.0 * Double($1.1) }
                worst = max(worst, abs(fd - exact) / max(gNorm, 1e-6))
            }
            report.append("\(t.name) \(String(format: "%.1e", worst))")
            #expect(worst < 1e-2, "\(t.name): relative error \(worst)")
        }
        print(
            "\(kind.rawValue) (\(parameterization.rawValue)) gradient check (worst relative error per tensor): "
                + report.joined(separator: ", "))
    }
}

@Suite struct ModelPropertyTests {
    @Test(arguments: [(ModelKind.ngpt, Parameterization.paper), (.ngpt, .nu), (.gpt, .paper)])
    func initialLossIsLogVocab(kind: ModelKind, parameterization: Parameterization) throws {
        let config = ModelConfig(
            kind: kind, vocabSize: 512, dim: 64, layers: 2, heads: 2, mlpHidden: 96, context: 32,
            parameterization: parameterization)
        let model = try makeModel(config)
        model.initialize(seed: 1)
        var rng = SplitMix64(seed: 2)
        let n = 2 * 32
        let inputs = (0..<n).map { _ in Int32(rng.below(512)) }, targets = (0..<n).map { _ in Int32(rng.below(512)) }
        let loss = model.forward(inputs: inputs, targets: targets, batch: 2)
        #expect(abs(loss - log(512.0)) < 0.05, "loss \(loss) vs ln V \(log(512.0))")
    }

    /// νGPT (design §4.5): the effective scale vectors start where the parameterization says (α = 0.05·4/L,
    /// s_qk = 1, s_z = √(d/256), s_u = s_ν = 1) from raw values of 0.03, and each group's learning-rate multiplier
    /// follows the width; a GPT cannot take it, and a checkpoint's model metadata without the field is the paper's.
    @Test func nuParameterizationStartsAndScalesAsSpecified() throws {
        let c = ModelConfig(
            kind: .ngpt, vocabSize: 64, dim: 64, layers: 8, heads: 2, mlpHidden: 96, context: 16, parameterization: .nu)
        let model = try makeModel(c)
        model.initialize(seed: 3)
        let scales = try #require(model.learnedScales())
        func close(_ v: [Float], _ x: Float) -> Bool { v.allSatisfy { abs($0 - x) < 1e-6 * max(1, x) } }
        #expect(close(scales.alphaAttn.flatMap { $0 }, 0.05 * 4 / 8) && close(scales.alphaMLP.flatMap { $0 }, 0.025))
        #expect(close(scales.sqk.flatMap { $0 }, 1) && close(scales.sz, 0.5) && close(scales.su.flatMap { $0 }, 1))
        let raw = model.layout["s_z"].map {
            Array(UnsafeBufferPointer(start: model.params.pointer + $0.offset, count: 4))
        }
        #expect(raw == [0.03, 0.03, 0.03, 0.03])
        let multipliers = c.recipe.multipliers(model.layout, dim: 64)
        for (t, m) in zip(model.layout.tensors, multipliers) {
            let expected: Float =
                switch t.group {
                case .embedding: 2  // (64/256)^(-1/2)
                case .matrix, .unembedding: Float(pow(4.0, 0.75))
                case .vector: 1
                }
            #expect(abs(m - expected) < 1e-5, "\(t.name): \(m)")
        }
        #expect(throws: UserError.self) { try ModelConfig(kind: .gpt, parameterization: .nu).validate() }
        let old = #"{"kind":"ngpt","vocabSize":64,"dim":64,"layers":2,"heads":2,"mlpHidden":96,"context":16}"#
        #expect(try JSONDecoder().decode(ModelConfig.self, from: Data(old.utf8)).parameterization == .paper)
        let roundTrip = try JSONDecoder().decode(ModelConfig.self, from: try JSONEncoder().encode(c))
        #expect(roundTrip == c)
    }

    @Test func renormalisationMakesEveryRowUnitAndLeavesScalesAlone() throws {
        let model = try makeModel(
            ModelConfig(kind: .ngpt, vocabSize: 100, dim: 48, layers: 2, heads: 4, mlpHidden: 70, context: 8))
        for t in model.layout.tensors {
            let p = model.params.pointer + t.offset
            for i in 0..<t.count { p[i] = p[i] * 3 + 0.01 }
        }
        let scales = model.layout.tensors.filter { $0.shape.count == 1 }.map { t in
            Array(UnsafeBufferPointer(start: model.params.pointer + t.offset, count: t.count))
        }
        #expect(model.projectWeights() > 0.5)
        for t in model.layout.tensors where t.renormalize {
            #expect(
                RowNorm.maxRowNormDeviation(model.params.pointer + t.offset, rows: t.shape[0], cols: t.shape[1]) < 1e-5,
                "\(t.name)")
        }
        let after = model.layout.tensors.filter { $0.shape.count == 1 }.map { t in
            Array(UnsafeBufferPointer(start: model.params.pointer + t.offset, count: t.count))
        }
        #expect(after == scales)
        #expect(Set(model.layout.tensors.filter(\.renormalize).map(\.name)).count == 2 + 2 * 7)
    }

    @Test func layoutFlagsFollowTheRecipes() throws {
        let gpt = ParameterLayout(config: ModelConfig(kind: .gpt, layers: 2))
        for t in gpt.tensors { #expect(t.decay == (t.shape.count == 2), "\(t.name)") }
        #expect(gpt.tensors.allSatisfy { !$0.renormalize })
        let ngpt = ParameterLayout(config: ModelConfig(kind: .ngpt, layers: 2))
        for t in ngpt.tensors { #expect(!t.decay && t.renormalize == (t.shape.count == 2), "\(t.name)") }
    }

    @Test func configValidationAndConfigSNumbers() throws {
        #expect(throws: UserError.self) { try ModelConfig(dim: 256, heads: 3).validate() }
        #expect(throws: UserError.self) { try ModelConfig(layers: 0).validate() }
        #expect(throws: UserError.self) { try ModelConfig(dim: 6, heads: 2).validate() }  // odd head size
        let ngpt = ModelConfig.s, gpt = ModelConfig(kind: .gpt)
        // nGPT: 2·V·d + L·(4d² + 3Fd) matrices + L·(3d + 2F) scale vectors + V (s_z)
        #expect(
            ngpt.parameterCount == 2 * 4096 * 256 + 4 * (4 * 256 * 256 + 3 * 683 * 256) + 4 * (3 * 256 + 2 * 683) + 4096
        )
        // GPT: the same matrices + 2L+1 gains of d
        #expect(gpt.parameterCount == 2 * 4096 * 256 + 4 * (4 * 256 * 256 + 3 * 683 * 256) + 9 * 256)
        #expect(
            ngpt.trainingFlopsPerToken == 6 * Double(4 * (4 * 256 * 256 + 3 * 683 * 256) + 4096 * 256) + 12 * 4 * 256
                * 256)
        print(
            "config S: nGPT \(ngpt.parameterCount) params, GPT \(gpt.parameterCount) params, "
                + "\(ngpt.trainingFlopsPerToken / 1e6) MFLOP/token"
        )
    }
}

@Suite struct FusedTrainingStepTests {
    /// The trainer's fused step against forward then backward. With one head chunk (these sizes) every product has
    /// the same shapes in the same order, so the loss and every gradient agree bit for bit, in fp32 and bf16.
    @Test(arguments: [(ModelKind.ngpt, GEMM.Precision.fp32), (.gpt, .fp32), (.ngpt, .bf16), (.gpt, .bf16)])
    func fusedStepEqualsForwardThenBackward(kind: ModelKind, precision: GEMM.Precision) throws {
        if precision == .bf16 && (try? GEMM.check(.bf16)) == nil { return }  // no AVX512_BF16 here
        let config = ModelConfig(kind: kind, vocabSize: 97, dim: 32, layers: 2, heads: 2, mlpHidden: 40, context: 16)
        let model = try makeModel(config)
        model.initialize(seed: 3)
        var rng = SplitMix64(seed: 4)
        let batch = 3, n = batch * config.context
        let inputs = (0..<n).map { _ in Int32(rng.below(97)) }, targets = (0..<n).map { _ in Int32(rng.below(97)) }
        GEMM.withPrecision(precision) {
            model.grads.zero()
            let loss = model.forward(inputs: inputs, targets: targets, batch: batch)
            model.backward(lossScale: 0.5)
            let separate = model.grads.array
            model.grads.zero()
            let fusedLoss = model.forwardBackward(inputs: inputs, targets: targets, batch: batch, lossScale: 0.5)
            #expect(fusedLoss == loss)
            let fused = model.grads.array  // a count, not the arrays: a failing == of large arrays is diffed (slow)
            #expect(zip(fused, separate).filter { $0.bitPattern != $1.bitPattern }.count == 0)
        }
    }

    /// Several chunks (a vocabulary large enough that a chunk is 256 rows; 600 rows make two full chunks and a
    /// partial one) against the head computed whole in Double.
    @Test func chunkedHeadMatchesTheWholeHead() {
        let n = 600, d = 16, V = 16_384
        #expect(OutputHead.chunkRows(rows: n, vocab: V) == 256)
        var rng = SplitMix64(seed: 8)
        let x = (0..<n * d).map { _ in Float(rng.normal()) },
            weight = (0..<V * d).map { _ in Float(0.5 * rng.normal()) }
        let targets = (0..<n).map { _ in Int32(rng.below(V)) }
        var chunk = [Float](repeating: 0, count: 256 * V), dx = [Float](repeating: 0, count: n * d)
        var weightGrad = [Float](repeating: 1, count: V * d)  // beta 1 adds to it
        let scale: Float = 1 / Float(n)
        let loss = OutputHead.lossAndGradient(
            x: x, weight: weight, rows: n, dim: d, vocab: V, targets: targets, logits: nil, chunk: &chunk,
            gradScale: scale, dx: &dx, weightGrad: &weightGrad, beta: 1)
        // The same in Double, row by row: z, softmax, dz; dx = dz·W, G = 1 + Σ dzᵀx.
        var refLoss = 0.0, refDx = [Double](repeating: 0, count: n * d), refG = [Double](repeating: 1, count: V * d)
        var z = [Double](repeating: 0, count: V)
        for r in 0..<n {
            for v in 0..<V {
                var dot = 0.0
                for j in 0..<d { dot += Double(x[r * d + j]) * Double(weight[v * d + j]) }
                z[v] = dot
            }
            let m = z.max()!, s = z.reduce(0.0) { $0 + exp($1 - m) }
            refLoss += log(s) + m - z[Int(targets[r])]
            for v in 0..<V {
                let dz = (exp(z[v] - m) / s - (v == Int(targets[r]) ? 1 : 0)) * Double(scale)
                for j in 0..<d {
                    refDx[r * d + j] += dz * Double(weight[v * d + j])
                    refG[v * d + j] += dz * Double(x[r * d + j])
                }
            }
        }
        #expect(abs(loss - refLoss) / refLoss < 1e-6, "loss \(loss) vs \(refLoss)")
        #expect(normwiseError(dx, refDx) < 1e-5, "dx \(normwiseError(dx, refDx))")
        let gradError = normwiseError(weightGrad, refG)
        #expect(gradError < 1e-5, "weight gradient \(gradError)")
    }
}
