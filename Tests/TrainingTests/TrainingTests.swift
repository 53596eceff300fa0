import Common
import Foundation
import Kernels
import NGPT
import Runs
import TestSupport
import Testing
import Tokenizer

@testable import Training

/// A small synthetic corpus (several documents) and a data directory shared by the tests of one process,
/// so the tokenizer is trained once.
enum Fixture {
    static let root: String = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ngpt-train-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: dir + "/corpus", withIntermediateDirectories: true)
        let words = [
            "the", "king", "queen", "love", "death", "night", "sword", "crown", "speak", "thee", "thou", "art",
            "noble", "lord", "lady", "fair", "heaven", "earth", "blood", "honour",
        ]
        var rng = SplitMix64(seed: 1)
        for d in 0..<12 {
            var lines: [String] = []
            for i in 0..<300 {
                // a learnable pattern: word pairs repeat
                let a = words[rng.below(words.count)]
                lines.append("\(a) \(a == "the" ? "king" : "fair") \(words[(i * 7 + d) % words.count]).")
            }
            try? AtomicFile.write(lines.joined(separator: "\n") + "\n", to: dir + "/corpus/doc\(d).txt")
        }
        return dir
    }()

    static func settings(_ model: String, steps: Int, out: String, extra: Settings = [:]) -> Settings {
        let s: Settings = [
            "model": .string(model), "layers": 2, "dim": 32, "heads": 2, "mlp-hidden": 48, "context": 32,
            "vocab-size": 300, "batch-size": 4, "steps": .int(steps), "eval-every": 4, "eval-windows": 4,
            "sample-tokens": 0, "corpus": .string(root + "/corpus"), "data-dir": .string(root + "/data"),
            "out": .string(out), "lr": 5e-3, "threads": 1,
        ]
        return s.merging(extra)
    }

    static func run(_ settings: Settings, resume: String? = nil, force: Bool = false, stopAfter: Int? = nil) throws
        -> RunSummary
    {
        let trainer = try Trainer(
            fileSettings: nil, flagSettings: settings, resume: resume, force: force,
            printer: ProgressPrinter(isTerminal: false))
        trainer.stopAfter = stopAfter
        return try trainer.run()
    }

    static func newDir(_ tag: String) -> String { root + "/runs/\(tag)-\(UUID().uuidString.prefix(8))" }

    static func metrics(_ dir: String) -> [[String: Any]] {
        ((try? String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8)) ?? "").split(separator: "\n").compactMap
        {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }
}

@Suite(.serialized) struct ResumeTests {
    /// N steps in one go vs N/2, stop, resume, N/2: identical weights, optimiser moments and losses, bit for bit,
    /// in both GEMM precisions (bf16 where the CPU has it).
    @Test(arguments: ["ngpt", "gpt"], GEMM.hasBF16 ? ["fp32", "bf16"] : ["fp32"])
    func resumeIsBitwiseIdentical(model: String, precision: String) throws {
        let whole = Fixture.newDir("whole"), split = Fixture.newDir("split")
        _ = try Fixture.run(
            Fixture.settings(model, steps: 8, out: whole, extra: ["log-every": 1, "precision": .string(precision)]))
        let first = try Fixture.run(
            Fixture.settings(model, steps: 8, out: split, extra: ["log-every": 1, "precision": .string(precision)]),
            stopAfter: 3
        )
        #expect(first.interrupted == "--stop-after" && first.steps == 3)
        let second = try Fixture.run(["threads": 1], resume: split)
        #expect(second.steps == 8 && second.interrupted == nil)
        let a = try SafeTensors(path: whole + "/latest.safetensors"),
            b = try SafeTensors(path: split + "/latest.safetensors")
        #expect(a.names == b.names)
        for name in a.names {
            let x = try a.floats(name), y = try b.floats(name)
            // counts, not the arrays: a failing == of large arrays makes the test library diff them (minutes)
            let differing = x.count == y.count ? zip(x, y).filter { $0.bitPattern != $1.bitPattern }.count : -1
            #expect(differing == 0, "\(name) differs after resume (\(differing) values)")
        }
        #expect(a.metadata["ngpt.adam_step"] == "8" && b.metadata["ngpt.adam_step"] == "8")
        // Per-step losses match bit for bit too (JSON doubles round-trip exactly).
        func losses(_ dir: String) -> [Int: Double] {
            var out: [Int: Double] = [:]
            for r in Fixture.metrics(dir) where r["type"] as? String == "train" {
                if let s = r["step"] as? Int, let l = r["train_loss"] as? Double { out[s] = l }
            }
            return out
        }
        let lw = losses(whole), ls = losses(split)
        #expect(ls.count == 8 && lw.count == 8)
        for (step, loss) in ls { #expect(lw[step] == loss, "step \(step)") }
        #expect(a.metadata["ngpt.val_loss"] == b.metadata["ngpt.val_loss"])
        #expect(
            try Checkpoint.read(b, path: "").extra["ngpt.config"]?.contains("\"precision\" : \"\(precision)\"") == true)
    }

    @Test func resumeRefusesArchitectureChangesButAcceptsScheduleChanges() throws {
        let dir = Fixture.newDir("arch")
        _ = try Fixture.run(Fixture.settings("ngpt", steps: 4, out: dir), stopAfter: 2)
        let error = #expect(throws: UserError.self) {
            _ = try Trainer(
                fileSettings: nil, flagSettings: ["dim": 64], resume: dir, force: false,
                printer: ProgressPrinter(isTerminal: false))
        }
        #expect(error?.message.contains("architecture keys cannot change on resume") == true)
        // schedule keys may change
        let summary = try Fixture.run(["steps": 5, "lr": 1e-3], resume: dir)
        #expect(summary.steps == 5)
        #expect(throws: UserError.self) {
            _ = try Trainer(
                fileSettings: nil, flagSettings: [:], resume: Fixture.root + "/nowhere", force: false,
                printer: ProgressPrinter(isTerminal: false))
        }
    }
}

@Suite(.serialized) struct RecipeTests {
    @Test func lossDecreasesOnASmallCorpus() throws {
        let dir = Fixture.newDir("learn")
        let summary = try Fixture.run(
            Fixture.settings("ngpt", steps: 60, out: dir, extra: ["eval-every": 20, "lr": 1e-2]))
        let evals = Fixture.metrics(dir).filter { $0["type"] as? String == "eval" }.compactMap {
            $0["val_loss"] as? Double
        }
        #expect(evals.count == 3)
        #expect(summary.finalValLoss < log(300.0) - 1.0, "val loss \(summary.finalValLoss) vs ln V \(log(300.0))")
        #expect(evals.last! < evals.first!)
        let gpt = try Fixture.run(
            Fixture.settings("gpt", steps: 60, out: Fixture.newDir("learn-gpt"), extra: ["eval-every": 20, "lr": 1e-2]))
        #expect(gpt.finalValLoss < log(300.0) - 1.0)

        // bits per byte beside nats per token: one factor for the fixed windows (their tokens over ln 2 × their bytes)
        let records = Fixture.metrics(dir).filter { $0["type"] as? String == "eval" }
        let ratios = records.compactMap { r in
            (r["val_bpb"] as? Double).flatMap { b in (r["val_loss"] as? Double).map { b / $0 } }
        }
        #expect(ratios.count == 3 && ratios.allSatisfy { abs($0 - ratios[0]) < 1e-9 })
        #expect(ratios[0] > 1 / (log(2) * 6) && ratios[0] < 1 / log(2))  // between 1 and 6 bytes per token
        // the run's own curves, redrawn at each evaluation (PNG at the end when rsvg-convert is installed)
        let svg = try String(contentsOfFile: dir + "/curves/val-loss-vs-step.svg", encoding: .utf8)
        #expect(svg.components(separatedBy: "<polyline").count == 2)
        for name in [
            "train-loss-vs-tokens", "lr-vs-step", "grad-norm-vs-step", "alpha_attn-vs-step", "val-bpb-vs-step",
        ] {
            #expect(FileManager.default.fileExists(atPath: dir + "/curves/\(name).svg"), "\(name)")
        }
    }

    @Test func ngptKeepsUnitRowsAndHasNoDecay() throws {
        let dir = Fixture.newDir("norms")
        _ = try Fixture.run(Fixture.settings("ngpt", steps: 6, out: dir, extra: ["log-every": 1]))
        let train = Fixture.metrics(dir).filter { $0["type"] as? String == "train" }
        #expect(train.count == 6)
        for r in train {
            #expect((r["max_row_norm_dev"] as? Double ?? 1) < 1e-5)
            #expect((r["alpha_attn"] as? [Double])?.count == 2)
            #expect(r["s_z_mean"] is Double)
        }
        var c = TrainConfig()
        for parameterization in Parameterization.allCases {
            c.model = ModelConfig(kind: .ngpt, parameterization: parameterization)
            #expect(c.decay == 0 && c.warmupSteps == 0)
        }
        c.model = ModelConfig(kind: .gpt)
        #expect(c.decay == 0.1 && c.warmupSteps == c.schedule.steps / 20)
    }

    /// Default learning rates follow the width and run length by the rules the study fitted (docs/lr-transfer/).
    @Test func defaultLearningRatesFollowTheWidthAndRunLength() {
        var c = TrainConfig()
        #expect(c.model.parameterization == .nu)  // ngpt-train's default nGPT
        #expect(abs(c.peakLR - 4.9e-3) < 1e-15)  // config S, 600 steps: νGPT's fitted base rate
        c.model.dim = 64
        #expect(abs(c.peakLR - 4.9e-3 * pow(4, 0.15)) < 1e-12)  // × (256/64)^0.15
        c.model.dim = 256
        c.schedule.steps = 4800
        #expect(abs(c.peakLR - 4.9e-3 * pow(8, 0.07) / 2) < 1e-12)  // × 8^0.07 (the fit) × 8^(-1/3) (νGPT's rule)
        c.schedule.lr = 2e-3
        #expect(abs(c.peakLR - 1e-3) < 1e-12)  // νGPT's own run-length factor applies to a given --lr too
        c = TrainConfig()
        c.model = ModelConfig(kind: .ngpt, dim: 64, parameterization: .paper)
        c.schedule.steps = 1200
        #expect(abs(c.peakLR - 9e-3 * pow(4, 0.57) * pow(2, -0.31)) < 1e-12)
        c.model = ModelConfig(kind: .gpt, dim: 64)
        #expect(abs(c.peakLR - 1.2e-3 * pow(4, 0.74) * pow(2, -0.05)) < 1e-12)
        c.model.dim = 256
        c.schedule.steps = 600
        #expect(abs(c.peakLR - 1.2e-3) < 1e-15)
        c.schedule.lr = 2e-3
        #expect(c.peakLR == 2e-3)  // a given --lr is taken as it is
    }

    @Test func scheduleShapes() {
        let s = LRSchedule(peak: 1e-3, minLR: 1e-4, warmup: 10, steps: 110)
        #expect(abs(s.lr(at: 0) - 1e-4) < 1e-12)  // linear from 0: (0+1)/10 of the peak
        #expect(abs(s.lr(at: 4) - 5e-4) < 1e-12)
        #expect(abs(s.lr(at: 9) - 1e-3) < 1e-12)
        #expect(abs(s.lr(at: 10) - 1e-3) < 1e-12)  // cosine starts at the peak
        #expect(abs(s.lr(at: 109) - 1e-4) < 1e-12)  // and ends at the floor
        #expect(s.lr(at: 60) < 6e-4 && s.lr(at: 60) > 5e-4)
        for t in 10..<109 { #expect(s.lr(at: t + 1) <= s.lr(at: t)) }
        let noWarmup = LRSchedule(peak: 2e-3, minLR: 0, warmup: 0, steps: 5)
        #expect(noWarmup.lr(at: 0) == 2e-3)
    }
}

@Suite struct ConfigTests {
    @Test func flagsOverrideTheFileWhichOverridesDefaults() throws {
        var c = TrainConfig()
        try c.apply(["steps": 1000, "lr": 0.002, "mlp-hidden": 512], source: "--config")
        try c.apply(["steps": 50], source: "flags")
        #expect(c.schedule.steps == 50 && c.schedule.lr == 0.002 && c.model.mlpHidden == 512 && c.model.dim == 256)
    }

    @Test func unknownKeysAndWrongTypesAreRejected() throws {
        var c = TrainConfig()
        let unknown = #expect(throws: UserError.self) { try c.apply(["stpes": 10], source: "--config") }
        #expect(unknown?.message.contains("did you mean \"steps\"") == true)
        #expect(throws: UserError.self) { try c.apply(["steps": "ten"], source: "--config") }
        #expect(throws: UserError.self) { try c.apply(["lr": true], source: "--config") }
        #expect(throws: UserError.self) { try c.apply(["model": "rnn"], source: "--config") }
        #expect(throws: UserError.self) { try c.apply(["steps": 1.5], source: "--config") }
    }

    @Test func validationNamesTheFlag() {
        func message(_ change: (inout TrainConfig) -> Void) -> String {
            var c = TrainConfig(); change(&c)
            do { try c.validate(); return "" } catch { return "\(error)" }
        }
        #expect(message { $0.model.heads = 3 }.contains("heads"))
        #expect(message { $0.schedule.lr = -1 }.contains("--lr"))
        #expect(message { $0.schedule.steps = 0 }.contains("--steps"))
        #expect(message { $0.schedule.minLr = 1 }.contains("--min-lr"))
        #expect(message { $0.output.sampleTokens = 10_000 }.contains("--sample-tokens"))
        #expect(message { _ in }.isEmpty)
    }

    /// Adding a key is one entry of the table plus its field: the entry alone gives the flag, the JSON form, the
    /// stored value, the help line and the range check.
    @Test func oneTableEntryMakesAKey() throws {
        let key = TrainingKey.key(
            "eval-period", \.output.evalEvery, .output, "Evaluate every N steps.", .within(1...50))
        #expect(key.parseFlag("7") == .int(7) && key.parseFlag("seven") == nil)
        var c = TrainConfig()
        #expect(key.set(&c, .int(7)) && c.output.evalEvery == 7 && key.get(c) == .int(7) && key.text(of: c) == "7")
        #expect(!key.set(&c, .string("x")) && c.output.evalEvery == 7)
        #expect(key.set(&c, .double(8)) && c.output.evalEvery == 8)  // JSON's 8.0 is the integer 8
        c.output.evalEvery = 51
        #expect(key.check(c) == "51 is too large (at most 50)")
        c.output.evalEvery = 0
        #expect(key.check(c) == "must be positive, got 0")
        #expect(key.defaultText == "100" && key.typeDescription == "an integer" && key.role == .output)
        let help = TrainingKey.helpText(keys: [key])
        #expect(help.contains("--eval-period <n>") && help.contains("(default: 100)"))
        // and the real table's keys are read the same way from flags, JSON and the stored form
        let flags = try Settings.fromFlags(["--eval-every", "7", "--precision", "fp32", "--lr", "0.01"])
        #expect(flags == ["eval-every": 7, "precision": "fp32", "lr": 0.01])
        var fromFlags = TrainConfig()
        try fromFlags.apply(flags, source: "flags")
        let file = try StrictJSON.parse(Array(#"{"eval-every": 7, "precision": "fp32", "lr": 1e-2}"#.utf8), what: "t")
        var fromJSON = TrainConfig()
        try fromJSON.apply(Settings(try #require(file.object)), source: "--config")
        #expect(fromFlags == fromJSON && fromJSON.output.evalEvery == 7 && fromJSON.schedule.precision == .fp32)
    }

    /// nGPT defaults to νGPT, a GPT to the only parameterization it has, whichever layer names the model; a stored
    /// configuration from before parameterizations existed is the paper's.
    @Test func parameterizationDefaultsPerModel() throws {
        #expect(TrainConfig().model.parameterization == .nu)
        var c = TrainConfig()
        try c.apply(["model": "gpt"], source: "flags")
        #expect(c.model.parameterization == .paper)
        try c.validate()
        try c.apply(["model": "ngpt"], source: "flags")
        #expect(c.model.parameterization == .nu)
        try c.apply(["model": "ngpt", "parameterization": "paper"], source: "--config")
        try c.apply(["steps": 10], source: "flags")
        #expect(c.model.parameterization == .paper)  // a later layer without "model" keeps it
        var stored = try #require(try JSONSerialization.jsonObject(with: Data(c.json().utf8)) as? [String: Any])
        stored["parameterization"] = nil
        let old = String(decoding: try JSONSerialization.data(withJSONObject: stored), as: UTF8.self)
        #expect(try TrainConfig.fromJSON(old).model.parameterization == .paper)
    }

    @Test func configJSONRoundTrips() throws {
        var c = TrainConfig()
        c.schedule.lr = 0.01; c.data.corpus = "/x y/z.txt"; c.model = ModelConfig(kind: .gpt)
        #expect(try TrainConfig.fromJSON(c.json()) == c)
        let keys = try JSONSerialization.jsonObject(with: Data(c.json().utf8)) as? [String: Any]
        #expect(keys?["mlp-hidden"] as? Int == 683)
    }
}

@Suite(.serialized) struct RobustnessTests {
    @Test func existingOrUnwritableRunDirectoriesAreRefusedBeforeTraining() throws {
        let dir = Fixture.newDir("exists")
        _ = try Fixture.run(Fixture.settings("ngpt", steps: 2, out: dir))
        let error = #expect(throws: UserError.self) {
            _ = try Fixture.run(Fixture.settings("ngpt", steps: 2, out: dir))
        }
        #expect(error?.message.contains("--resume") == true && error?.message.contains("--force") == true)
        _ = try Fixture.run(Fixture.settings("ngpt", steps: 2, out: dir), force: true)
        // a path under a regular file cannot be created
        try AtomicFile.write("x", to: Fixture.root + "/afile")
        #expect(throws: UserError.self) {
            _ = try Fixture.run(Fixture.settings("ngpt", steps: 2, out: Fixture.root + "/afile/run"))
        }
    }

    /// Rewrites a checkpoint with `change` applied to the named tensor's values; returns the new bytes.
    static func tamper(_ path: String, _ tensor: String, _ change: (inout [Float]) -> Void) throws -> Data {
        let file = try SafeTensors(path: path)
        var tensors: [SafeTensors.Tensor] = []
        for name in file.names {
            var v = try file.floats(name)
            if name == tensor { change(&v) }
            tensors.append(.init(name: name, shape: file.entries[name]!.shape, floats: v))
        }
        let bytes = SafeTensors.serialize(tensors, metadata: file.metadata)
        try AtomicFile.write(bytes, to: path)
        return Data(bytes)
    }

    @Test func nonFiniteLossStopsAndKeepsTheLastCheckpoint() throws {
        let dir = Fixture.newDir("nan")
        _ = try Fixture.run(Fixture.settings("gpt", steps: 6, out: dir), stopAfter: 2)
        // Poison the optimiser state behind the trainer's back (finite, so the checkpoint loads): a negative second
        // moment makes the first update NaN, and the next forward's loss NaN.
        let path = dir + "/latest.safetensors"
        let good = try Data(contentsOf: URL(fileURLWithPath: path))
        let poisoned = try Self.tamper(path, "opt.v.output.weight") { v in for i in v.indices { v[i] = -1 } }
        let error = #expect(throws: UserError.self) { _ = try Fixture.run(["threads": 1], resume: dir) }
        #expect(error?.message.contains("the loss became nan") == true, "\(error?.message ?? "")")
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == poisoned)  // untouched by the failed run
        try good.write(to: URL(fileURLWithPath: path))
        #expect(try Fixture.run(["threads": 1], resume: dir).steps == 6)
    }

    /// A checkpoint holding a NaN is refused on load, naming the tensor, and left as it is.
    @Test func nonFiniteCheckpointIsRefusedOnLoad() throws {
        let dir = Fixture.newDir("nanload")
        _ = try Fixture.run(Fixture.settings("ngpt", steps: 4, out: dir), stopAfter: 2)
        let path = dir + "/latest.safetensors"
        let poisoned = try Self.tamper(path, "layers.1.mlp.w_up") { $0[5] = .nan }
        let error = #expect(throws: UserError.self) { _ = try Fixture.run(["threads": 1], resume: dir) }
        #expect(error?.message.contains("layers.1.mlp.w_up") == true && error?.message.contains("non-finite") == true)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == poisoned)
    }

    @Test func corruptCheckpointIsAClearError() throws {
        let dir = Fixture.newDir("corrupt")
        _ = try Fixture.run(Fixture.settings("ngpt", steps: 4, out: dir), stopAfter: 2)
        let path = dir + "/latest.safetensors"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: path))
        let error = #expect(throws: UserError.self) { _ = try Fixture.run([:], resume: dir) }
        #expect(error?.message.contains("corrupt") == true)
    }

    /// A real process: SIGINT finishes the step, writes a checkpoint, exits 0 and says how to resume.
    @Test func sigintCheckpointsAndExitsCleanly() throws {
        let exe = productsDirectory() + "/ngpt-train"
        let dir = Fixture.newDir("sigint")
        // Make sure the data is prepared, so the process reaches training quickly.
        _ = try Fixture.run(Fixture.settings("ngpt", steps: 1, out: Fixture.newDir("warm")))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = [
            "--model", "ngpt", "--layers", "2", "--dim", "32", "--heads", "2", "--mlp-hidden", "48", "--context", "32",
            "--vocab-size", "300", "--batch-size", "4", "--steps", "100000", "--eval-every", "100000",
            "--sample-tokens", "0", "--corpus", Fixture.root + "/corpus", "--data-dir", Fixture.root + "/data",
            "--out", dir, "--log-every", "1", "--threads", "1",
        ]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        // Wait for training to be under way (a train record in metrics.jsonl), then interrupt.
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && !Fixture.metrics(dir).contains(where: { ($0["step"] as? Int ?? 0) >= 2 }) {
            usleep(50_000)
        }
        kill(p.processIdentifier, SIGINT)
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(text.suffix(500))")
        #expect(text.contains("resume with: ngpt-train --resume \(dir)"))
        let ckpt = try SafeTensors(path: dir + "/latest.safetensors")
        let step = Int(ckpt.metadata["ngpt.step"] ?? "") ?? 0
        #expect(step >= 2)
        // and the run continues from there
        let resumed = try Fixture.run(["steps": .int(step + 2), "threads": 1], resume: dir)
        #expect(resumed.steps == step + 2)
    }
}
