import Common
import DataPipeline
import Foundation
import Kernels
import NGPT
import Runs
import TestSupport
import Testing
import Tokenizer
import Training

@testable import Sampling

func fixture(_ name: String) throws -> String {
    guard let url = Bundle.module.url(forResource: "Fixtures/" + name, withExtension: nil) else {
        throw UserError("missing fixture \(name)")
    }
    return url.path
}

@Suite struct KVCacheTests {
    /// Logits from the single-token path equal the training forward's at every position (both models).
    @Test(arguments: [ModelKind.ngpt, .gpt])
    func cacheLogitsEqualFullRecompute(kind: ModelKind) throws {
        let config = ModelConfig(kind: kind, vocabSize: 97, dim: 48, layers: 2, heads: 3, mlpHidden: 70, context: 20)
        let model = try makeModel(config)
        model.initialize(seed: 3)
        var rng = SplitMix64(seed: 4)
        // Perturb the scale vectors / gains so that every term matters.
        for t in model.layout.tensors where t.shape.count == 1 {
            let p = model.params.pointer + t.offset
            for i in 0..<t.count { p[i] *= Float(1 + 0.3 * rng.normal()) }
        }
        let tokens = (0..<config.context).map { _ in Int32(rng.below(97)) }
        _ = model.forward(inputs: tokens, targets: tokens, batch: 1)
        let full = Array(UnsafeBufferPointer(start: model.logits, count: config.context * 97))
        let decoder = model.makeDecoder()
        var worst: Float = 0, scale: Float = 0
        for (i, t) in tokens.enumerated() {
            let row = decoder.step(t)
            for v in 0..<97 {
                worst = max(worst, abs(row[v] - full[i * 97 + v]))
                scale = max(scale, abs(full[i * 97 + v]))
            }
        }
        #expect(decoder.position == config.context)
        // Float arithmetic in a different order (matrix–vector vs GEMM): 1e-5 of the logits' scale.
        #expect(worst <= 1e-5 * max(1, scale), "max |Δlogit| \(worst), scale \(scale)")
    }
}

@Suite struct BFloat16DecodeTests {
    @Test func roundingIsToNearestEven() {
        #expect(BFloat16.round(1) == 0x3F80)
        #expect(BFloat16.float(BFloat16.round(1 + 1.0 / 256)) == 1)  // halfway: rounds to even (down)
        #expect(BFloat16.float(BFloat16.round(1 + 3.0 / 256)) == 1 + 4.0 / 256)  // halfway: rounds to even (up)
        #expect(BFloat16.float(BFloat16.round(-2.5)) == -2.5)
        #expect(BFloat16.float(BFloat16.round(.nan)).isNaN)
        #expect(BFloat16.float(BFloat16.round(.infinity)) == .infinity)
    }

    @Test func bf16GemvMatchesRoundedWeights() {
        var rng = SplitMix64(seed: 8)
        for (rows, cols) in [(7, 33), (64, 256), (5, 70)] {
            let a = (0..<(rows * cols)).map { _ in Float(rng.normal()) }
            let b = a.map(BFloat16.round)
            for transpose in [false, true] {
                let x = (0..<(transpose ? rows : cols)).map { _ in Float(rng.normal()) }
                let n = transpose ? cols : rows
                var y = [Float](repeating: 1, count: n),
                    scratch = [Float](repeating: 0, count: 2 * max(rows, cols) + 32)
                GEMM.gemv(
                    transpose: transpose, rows: rows, cols: cols, b, lda: cols, x, beta: 0.5, &y, scratch: &scratch)
                for i in 0..<n {
                    var ref = 0.5
                    for j in 0..<(transpose ? rows : cols) {
                        let w = Double(BFloat16.float(transpose ? b[j * cols + i] : b[i * cols + j]))
                        ref += w * Double(x[j])
                    }
                    #expect(abs(Double(y[i]) - ref) < 1e-4 * max(1, abs(ref)), "\(rows)×\(cols) t=\(transpose) [\(i)]")
                }
            }
        }
    }

    /// The vdpbf16ps kernel (x rounded to bf16) against the Float-x loop it replaces given the same rounded x:
    /// equal up to the order of the sums; tails of a row (cols mod 32), rows in fours and beta covered.
    @Test(.enabled(if: GEMM.hasBF16Gemv), arguments: [(7, 33), (64, 256), (5, 70), (683, 256), (256, 683), (1, 1)])
    func bf16KernelMatchesTheLoopItReplaces(rows: Int, cols: Int) {
        var rng = SplitMix64(seed: UInt64(rows * 1000 + cols))
        let a = (0..<(rows * cols)).map { _ in BFloat16.round(Float(rng.normal())) }
        let x = (0..<cols).map { _ in Float(rng.normal()) }
        let rounded = x.map { BFloat16.float(BFloat16.round($0)) }
        var scratch = [Float](repeating: 0, count: 2 * max(rows, cols) + 64)
        for beta: Float in [0, 0.5] {
            var kernel = [Float](repeating: 1, count: rows), loop = kernel
            GEMM.gemvBF16(rows: rows, cols: cols, a, x, beta: beta, &kernel, scratch: &scratch)
            GEMM.gemv(
                transpose: false, rows: rows, cols: cols, a, lda: cols, rounded, beta: beta, &loop, scratch: &scratch)
            for r in 0..<rows {
                let magnitude = (0..<cols).reduce(Float(beta)) {
                    $0 + abs(BFloat16.float(a[r * cols + $1]) * rounded[$1])
                }
                #expect(abs(kernel[r] - loop[r]) <= 1e-5 * max(1, magnitude), "\(rows)×\(cols) [\(r)] β \(beta)")
            }
        }
    }

    /// Rows split over the workers: the same bits on one thread and on two.
    @Test(.enabled(if: GEMM.hasBF16Gemv)) func bf16KernelDoesNotDependOnTheThreadCount() {
        var rng = SplitMix64(seed: 12)
        let rows = 683, cols = 256
        let a = (0..<(rows * cols)).map { _ in BFloat16.round(Float(rng.normal())) }
        let x = (0..<cols).map { _ in Float(rng.normal()) }
        var scratch = [Float](repeating: 0, count: 2 * rows + 64)
        var results: [[UInt32]] = []
        for threads in [1, 2] {
            Threads.configure(threads: threads)
            var y = [Float](repeating: 0, count: rows)
            GEMM.gemvBF16(rows: rows, cols: cols, a, x, &y, scratch: &scratch)
            results.append(y.map(\.bitPattern))
        }
        Threads.configure()
        #expect(results[0] == results[1])
    }

    /// Matrices with one input as one job over all their rows (q, k and v; up and gate): the bits of one call per
    /// matrix, for one vector and a batch, on one thread and two (the split falls inside a matrix or between).
    @Test(.enabled(if: GEMM.hasBF16Gemv), arguments: [1, 3])
    func aGroupOfMatricesGivesTheBitsOfOneCallEach(vectors n: Int) {
        var rng = SplitMix64(seed: UInt64(40 + n))
        let cols = 96, rows = [64, 37, 131]
        let matrices = rows.map { r in (0..<(r * cols)).map { _ in BFloat16.round(Float(rng.normal())) } }
        let x = (0..<(n * cols)).map { _ in Float(rng.normal()) }
        var scratch = [Float](repeating: 0, count: n * (cols / 2 + 32) + 2 * 256 + 64)
        var alone: [[Float]] = []
        for (a, r) in zip(matrices, rows) {
            var y = [Float](repeating: 0, count: n * r)
            GEMM.gemvBF16(rows: r, cols: cols, a, vectors: n, x, &y, scratch: &scratch)
            alone.append(y)
        }
        for threads in [1, 2] {
            Threads.configure(threads: threads)
            let outputs = rows.map { UnsafeMutablePointer<Float>.allocate(capacity: n * $0) }
            let copies = matrices.map { m in
                let p = UnsafeMutablePointer<UInt16>.allocate(capacity: m.count)
                p.initialize(from: m, count: m.count)
                return p
            }
            let parts = (0..<3).map { GEMM.GemvRows(copies[$0], rows: rows[$0], outputs[$0]) }
            parts.withUnsafeBufferPointer { GEMM.gemvBF16($0, cols: cols, vectors: n, x, scratch: &scratch) }
            for g in 0..<3 {
                let grouped = Array(UnsafeBufferPointer(start: outputs[g], count: n * rows[g]))
                #expect(grouped.map(\.bitPattern) == alone[g].map(\.bitPattern), "matrix \(g), \(threads) threads")
            }
            outputs.forEach { $0.deallocate() }
            copies.forEach { $0.deallocate() }
        }
        Threads.configure()
    }

    /// Streams decoded together (slots at different positions, one of them taking several rows in a step, as a
    /// prompt does) give each stream the same logits, bit for bit, as decoding it alone.
    @Test(arguments: [ModelKind.ngpt, .gpt], DecodePrecision.allCases)
    func aBatchGivesEachStreamItsLogitsAlone(kind: ModelKind, precision: DecodePrecision) throws {
        let config = ModelConfig(kind: kind, vocabSize: 97, dim: 64, layers: 2, heads: 2, mlpHidden: 90, context: 24)
        let model = try makeModel(config)
        model.initialize(seed: 7)
        var rng = SplitMix64(seed: 8)
        let streams = (0..<5).map { _ in (0..<20).map { _ in Int32(rng.below(97)) } }
        // alone
        var alone: [[[Float]]] = []
        let single = model.makeDecoder(precision: precision)
        for tokens in streams {
            single.reset()
            alone.append(tokens.map { Array(UnsafeBufferPointer(start: single.step($0), count: 97)) })
        }
        // together: stream s starts at step s; stream 0 takes its first 4 tokens in one step
        let batch = model.makeBatchDecoder(precision: precision, slots: 5, maxRows: 8)
        var next = [Int](repeating: 0, count: 5)
        for step in 0..<30 {
            var rows: [DecodeRow] = []
            for s in 0..<5 where step >= s && next[s] < 20 {
                let take = s == 0 && next[s] == 0 ? 4 : 1
                for _ in 0..<take { rows.append(DecodeRow(slot: s, token: streams[s][next[s]])); next[s] += 1 }
            }
            if rows.isEmpty { break }
            let logits = batch.step(rows)
            var seen = [Int](repeating: 0, count: 5)
            for (i, row) in rows.enumerated() {
                let position = next[row.slot] - rows.filter { $0.slot == row.slot }.count + seen[row.slot]
                seen[row.slot] += 1
                let got = Array(UnsafeBufferPointer(start: logits + i * 97, count: 97))
                #expect(got == alone[row.slot][position], "stream \(row.slot) position \(position)")
            }
        }
        #expect((0..<5).allSatisfy { batch.position(of: $0) == 20 })
    }

    /// bf16 weights keep ~3 significant digits: logits stay within 2 % of the fp32 path's scale.
    @Test(arguments: [ModelKind.ngpt, .gpt])
    func bf16LogitsAreCloseToFP32(kind: ModelKind) throws {
        let config = ModelConfig(kind: kind, vocabSize: 97, dim: 64, layers: 2, heads: 2, mlpHidden: 90, context: 16)
        let model = try makeModel(config)
        model.initialize(seed: 5)
        let exact = model.makeDecoder(precision: .fp32), fast = model.makeDecoder(precision: .bf16)
        var rng = SplitMix64(seed: 6)
        var worst: Float = 0, scale: Float = 0
        for _ in 0..<16 {
            let t = Int32(rng.below(97))
            let a = Array(UnsafeBufferPointer(start: exact.step(t), count: 97)),
                b = Array(UnsafeBufferPointer(start: fast.step(t), count: 97))
            for v in 0..<97 { worst = max(worst, abs(a[v] - b[v])); scale = max(scale, abs(a[v])) }
        }
        #expect(worst < 0.02 * max(scale, 1e-3), "max |Δ| \(worst) of scale \(scale)")
        #expect(worst > 0)  // it really is a different path
    }
}

@Suite struct SamplerTests {
    let logits: [Float] = [log(0.5), log(0.3), log(0.15), log(0.05)]

    @Test func topKKeepsExactlyKWithTiesByLowerId() {
        let s = Sampler(transforms: [TopK(2)], seed: 1)
        let p = s.probabilities([1, 3, 3, 2])
        #expect(p[0] == 0 && p[3] == 0 && abs(p[1] - 0.5) < 1e-6 && abs(p[2] - 0.5) < 1e-6)
        let one = Sampler(transforms: [TopK(1)], seed: 1).probabilities([1, 3, 3, 2])
        #expect(one == [0, 1, 0, 0])
    }

    @Test func topPKeepsTheSmallestNucleus() {
        let p = Sampler(transforms: [TopP(0.8)], seed: 1).probabilities(logits)
        #expect(abs(p[0] - 0.625) < 1e-5 && abs(p[1] - 0.375) < 1e-5 && p[2] == 0 && p[3] == 0)
        let all = Sampler(transforms: [TopP(1)], seed: 1).probabilities(logits)
        #expect(abs(all[3] - 0.05) < 1e-6)
        let first = Sampler(transforms: [TopP(0.1)], seed: 1).probabilities(logits)
        #expect(first == [1, 0, 0, 0])
    }

    @Test func minPDropsTheUnlikely() {
        let p = Sampler(transforms: [MinP(0.2)], seed: 1).probabilities(logits)  // keep p ≥ 0.1
        #expect(p[3] == 0 && abs(p[0] - 0.5 / 0.95) < 1e-5 && abs(p[2] - 0.15 / 0.95) < 1e-5)
    }

    @Test func temperatureAndRepetitionPenalty() {
        let p = Sampler(transforms: [Temperature(0.5)], seed: 1).probabilities(logits)  // ∝ p²
        let z = 0.25 + 0.09 + 0.0225 + 0.0025
        #expect(abs(Double(p[0]) - 0.25 / z) < 1e-5 && abs(Double(p[3]) - 0.0025 / z) < 1e-5)
        var l: [Float] = [2, -1, 3]
        RepetitionPenalty(2).apply(to: &l, history: [0, 1, 1])
        #expect(l == [1, -2, 3])
    }

    @Test func greedyTakesTheLowestIdAmongTies() {
        var s = Sampler(SamplerSettings(temperature: 0))
        let l: [Float] = [0, 5, 5, 1]
        #expect(s.next(l, count: 4, history: []) == 1)
    }

    @Test func drawsFollowTheDistributionAndTheSeed() {
        var a = Sampler(SamplerSettings(temperature: 1, seed: 42)),
            b = Sampler(SamplerSettings(temperature: 1, seed: 42))
        var c = Sampler(SamplerSettings(temperature: 1, seed: 43))
        var counts = [0, 0, 0, 0]
        var sameAsB = true, sameAsC = true
        for _ in 0..<20_000 {
            let x = a.next(logits, count: 4, history: [])
            counts[Int(x)] += 1
            sameAsB = sameAsB && x == b.next(logits, count: 4, history: [])
            sameAsC = sameAsC && x == c.next(logits, count: 4, history: [])
        }
        #expect(sameAsB && !sameAsC)
        for (i, p) in [0.5, 0.3, 0.15, 0.05].enumerated() { #expect(abs(Double(counts[i]) / 20_000 - p) < 0.015) }
        // the general path (several transforms) draws from the same distribution
        var g = Sampler(transforms: [Temperature(1), TopK(4)], seed: 7)
        var gc = [0, 0, 0, 0]
        for _ in 0..<20_000 { gc[Int(g.next(logits, count: 4, history: []))] += 1 }
        for (i, p) in [0.5, 0.3, 0.15, 0.05].enumerated() { #expect(abs(Double(gc[i]) / 20_000 - p) < 0.015) }
    }

    @Test func invalidSettingsAreRejectedNotClamped() {
        for bad in [
            SamplerSettings(temperature: -1), SamplerSettings(topK: -1), SamplerSettings(topP: 0),
            SamplerSettings(topP: 1.5),
            SamplerSettings(minP: 1), SamplerSettings(repetitionPenalty: 0),
        ] {
            #expect(throws: UserError.self) { try bad.validate() }
        }
        #expect(throws: Never.self) { try SamplerSettings().validate() }
    }
}

@Suite struct GenerationTests {
    func loaded() throws -> LoadedModel { try LoadedModel.load(checkpoint: try fixture("tiny-ngpt.safetensors")) }

    @Test func greedyGenerationIsByteExact() throws {
        let m = try loaded()
        let g = Generator(model: m.model, tokenizer: m.tokenizer)
        var sampler = Sampler(SamplerSettings(temperature: 0))
        var streamed = ""
        let result = try g.generate(prompt: try g.promptIds("the king").ids, maxTokens: 40, sampler: &sampler) {
            streamed += $0
        }
        let expected = try String(contentsOfFile: try fixture("expected-greedy.txt"), encoding: .utf8)
        #expect(result.text == expected)
        #expect(streamed == expected)
        #expect(result.tokens.count == 40)
    }

    @Test func seedsGiveReproducibleAndDifferentText() throws {
        let m = try loaded()
        let g = Generator(model: m.model, tokenizer: m.tokenizer)
        func text(_ seed: UInt64) throws -> String {
            var s = Sampler(SamplerSettings(temperature: 1.2, seed: seed))
            return try g.generate(prompt: [], maxTokens: 60, sampler: &s).text
        }
        #expect(try text(1) == text(1))
        #expect(try text(1) != text(2))
    }

    @Test func slidingWindowAndStopStrings() throws {
        let m = try loaded()
        let g = Generator(model: m.model, tokenizer: m.tokenizer)
        var s = Sampler(SamplerSettings(temperature: 0))
        // 3× the context of 32: the window slides twice
        let long = try g.generate(prompt: [], maxTokens: 100, sampler: &s)
        #expect(long.tokens.count == 100)
        var s2 = Sampler(SamplerSettings(temperature: 0))
        var streamed = ""
        let stopped = try g.generate(
            prompt: try g.promptIds("the king").ids, maxTokens: 40, sampler: &s2, stop: ["café"]
        ) { streamed += $0 }
        #expect(stopped.stoppedAt == "café")
        #expect(!stopped.text.contains("café") && streamed == stopped.text)
        #expect(stopped.text == " the, ☃ ")
        // a prompt longer than the context keeps its tail
        let (ids, dropped) = try g.promptIds(String(repeating: "the king fair. ", count: 40))
        #expect(ids.count == 31 && dropped > 0)
    }

    /// Requests decoded together on one batch decoder (different prompts, seeds, settings, lengths past the
    /// context so windows slide, a stop string, a prompt fed in chunks) give each the text, tokens and streamed
    /// pieces `Generator` gives it alone.
    @Test(arguments: DecodePrecision.allCases) func aBatchGivesEachRequestItsTextAlone(precision: DecodePrecision)
        throws
    {
        let m = try loaded()
        let g = Generator(model: m.model, tokenizer: m.tokenizer, precision: precision)
        let requests: [(prompt: String, settings: SamplerSettings, maxTokens: Int, stop: [String])] = [
            ("the king", SamplerSettings(temperature: 0), 40, ["café"]),
            ("", SamplerSettings(temperature: 1.2, seed: 3), 90, []),
            ("the queen speaks", SamplerSettings(temperature: 0.8, topK: 20, seed: 5), 70, []),
            (String(repeating: "fair lord ", count: 12), SamplerSettings(temperature: 0.9, topP: 0.9, seed: 9), 50, []),
            ("love", SamplerSettings(temperature: 0.7, repetitionPenalty: 1.3, seed: 11), 1, []),
        ]
        var alone: [(GenerationResult, [String])] = []
        var sessions: [GenerationSession] = []
        for r in requests {
            let ids = try g.promptIds(r.prompt).ids
            var sampler = Sampler(r.settings)
            var pieces: [String] = []
            alone.append(
                (
                    try g.generate(prompt: ids, maxTokens: r.maxTokens, sampler: &sampler, stop: r.stop) {
                        pieces.append($0)
                    }, pieces
                ))
            sessions.append(
                GenerationSession(
                    prompt: ids, maxTokens: r.maxTokens, sampler: Sampler(r.settings), stop: r.stop,
                    tokenizer: m.tokenizer, config: m.model.config))
        }
        let decoder = m.model.makeBatchDecoder(precision: precision, slots: requests.count, maxRows: 12)
        var pieces = [[String]](repeating: [], count: requests.count)
        try runSessions(&sessions, decoder: decoder, prefillChunk: 5) { pieces[$0].append($1) }
        for (i, session) in sessions.enumerated() {
            #expect(session.text == alone[i].0.text, "request \(i)")
            #expect(session.generated == alone[i].0.tokens, "request \(i)")
            #expect(session.stoppedAt == alone[i].0.stoppedAt)
            #expect(pieces[i] == alone[i].1, "request \(i)")
        }
        #expect(sessions[0].finish == .stop && sessions[1].finish == .length)
        #expect(sessions[1].generated.count == 90)  // past the context of 32: the window slid
    }

    @Test func streamingReleasesOnlyWholeCharacters() throws {
        let m = try loaded()
        let text = "☃ 新しい café 🙂"
        let ids = try m.tokenizer.encode(text)
        #expect(ids.count > 8)  // multi-byte characters outside the vocab come as byte pieces
        var stream = StreamingDetokenizer(tokenizer: m.tokenizer)
        var chunks: [String] = []
        for id in ids { chunks.append(try stream.append(id)) }
        chunks.append(try stream.flush())
        #expect(chunks.joined() == text)
        #expect(!chunks.joined().contains("\u{FFFD}"))
        #expect(chunks.contains(""))  // some pieces completed no character yet
        #expect(StreamingDetokenizer.completeUTF8Prefix([0x61, 0xE2, 0x98]) == 1)
        #expect(StreamingDetokenizer.completeUTF8Prefix([0x61, 0xE2, 0x98, 0x83]) == 4)
    }
}

@Suite struct PerplexityAndErrorTests {
    /// Perplexity of the validation text equals the trainer's evaluation of the same windows.
    @Test func perplexityMatchesTheTrainersEvaluation() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ppl-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var lines: [String] = []
        var rng = SplitMix64(seed: 3)
        let words = ["the", "king", "fair", "night", "sword", "lady", "honour", "thee"]
        for _ in 0..<1500 {
            lines.append((0..<6).map { _ in words[rng.below(words.count)] }.joined(separator: " ") + ".")
        }
        let corpus = lines.joined(separator: "\n") + "\n"
        try AtomicFile.write(corpus, to: dir + "/one.txt")
        let settings: Settings = [
            "layers": 1, "dim": 32, "heads": 2, "mlp-hidden": 32, "context": 32, "vocab-size": 300,
            "batch-size": 4, "steps": 10, "eval-every": 10, "eval-windows": 100000, "sample-tokens": 0,
            "corpus": .string(dir + "/one.txt"), "data-dir": .string(dir + "/data"), "out": .string(dir + "/run"),
            "threads": 1,
            "precision": "fp32",
        ]  // the same products as Perplexity.evaluate here
        let trainer = try Trainer(
            fileSettings: nil, flagSettings: settings, resume: nil, force: false,
            printer: ProgressPrinter(isTerminal: false))
        let summary = try trainer.run()
        let m = try LoadedModel.load(checkpoint: dir + "/run/latest.safetensors")
        // the run's validation split, as text
        let data = try DataPreparation.prepare(trainer.config.dataOptions, context: 32)
        let ids = data.validation.shards.flatMap { s in (0..<s.count).map { s[$0] } }
        let validation = try m.tokenizer.decode(ids.filter { $0 != m.tokenizer.bosId })
        let report = try Perplexity.evaluate(text: validation, model: m.model, tokenizer: m.tokenizer, batch: 4)
        #expect(
            abs(report.meanLoss - summary.finalValLoss) < 1e-6 * summary.finalValLoss,
            "\(report.meanLoss) vs \(summary.finalValLoss)")
        #expect(abs(report.perplexity - exp(report.meanLoss)) < 1e-9)
        #expect(report.bitsPerByte > 0 && report.bytes > report.tokens)
    }

    @Test func badInputsAreClearErrors() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        func message(_ body: () throws -> Void) -> String {
            do { try body(); return "" } catch { return "\(error)" }
        }
        #expect(message { _ = try LoadedModel.load(checkpoint: dir + "/missing") }.contains("checkpoint not found"))
        #expect(message { _ = try LoadedModel.load(checkpoint: dir) }.contains("no best.safetensors"))
        let good = try Data(contentsOf: URL(fileURLWithPath: try fixture("tiny-ngpt.safetensors")))
        try good.prefix(1000).write(to: URL(fileURLWithPath: dir + "/cut.safetensors"))
        #expect(
            message {
                _ = try LoadedModel.load(
                    checkpoint: dir + "/cut.safetensors", tokenizer: try fixture("tokenizer.model"))
            }
            .contains("corrupt or truncated"))
        // a tokenizer with another vocab size
        try AtomicFile.write(syntheticLines(), to: dir + "/t.txt")
        try SentencePieceModel.train(
            inputFile: dir + "/t.txt", modelPrefix: dir + "/other",
            options: TokenizerTrainingOptions(vocabSize: 320))
        #expect(
            message {
                _ = try LoadedModel.load(
                    checkpoint: try fixture("tiny-ngpt.safetensors"), tokenizer: dir + "/other.model")
            }
            .contains("has 320 pieces but the model was trained with 300"))
        // a checkpoint holding an infinity (what ngpt-sample and ngpt-inspect load) names the tensor
        let file = try SafeTensors(path: try fixture("tiny-ngpt.safetensors"))
        let tensors = try file.names.map { name -> SafeTensors.Tensor in
            var v = try file.floats(name)
            if name == "s_z" { v[3] = .infinity }
            return .init(name: name, shape: file.entries[name]!.shape, floats: v)
        }
        try AtomicFile.write(SafeTensors.serialize(tensors, metadata: file.metadata), to: dir + "/inf.safetensors")
        let inf = message {
            _ = try LoadedModel.load(checkpoint: dir + "/inf.safetensors", tokenizer: try fixture("tokenizer.model"))
        }
        #expect(inf.contains("tensor s_z holds a non-finite value"), "\(inf)")
    }

    func syntheticLines() -> String {
        (0..<500).map { "line \($0) with some words, café ☃" }.joined(separator: "\n")
    }

    @Test func cliRejectsInvalidFlagsAndMissingCheckpoints() throws {
        let exe = productsDirectory() + "/ngpt-sample"
        let ckpt = try fixture("tiny-ngpt.safetensors")
        for args in [["--top-p", "1.5"], ["--temperature", "-0.1"], ["--top-k", "-1"], ["--max-tokens", "0"]] {
            let (status, _, err) = try runProcess([exe, "--checkpoint", ckpt] + args)
            #expect(status == 1 && err.hasPrefix("error: ") && err.split(separator: "\n").count == 1, "\(args): \(err)")
        }
        let (status, _, err) = try runProcess([exe, "--checkpoint", "/nonexistent/run"])
        #expect(status == 1 && err.contains("error: checkpoint not found"))
        let (ok, out, _) = try runProcess([
            exe, "--checkpoint", ckpt, "--prompt", "the king", "--temperature", "0", "--max-tokens", "40",
            "--precision", "fp32",
        ])
        let expected =
            "the king" + (try String(contentsOfFile: try fixture("expected-greedy.txt"), encoding: .utf8)) + "\n"
        #expect(ok == 0 && out == expected)
    }
}
