import Common
import Foundation
import Kernels
import NGPT
import Runs
import Testing
import Tokenizer

@testable import Training

/// `--init-from`: a new run on another corpus starts from a trained run's weights, with its architecture and
/// tokenizer, and a fresh optimiser.
@Suite(.serialized) struct FineTuneTests {
    /// A second corpus, unlike the fixture's.
    static let otherCorpus: String = {
        let dir = Fixture.root + "/other-corpus"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var lines: [String] = []
        for i in 0..<1500 { lines.append("the lady speaks of heaven and earth, \(i % 17) times.") }
        try? AtomicFile.write(lines.joined(separator: "\n") + "\n", to: dir + "/other.txt")
        return dir
    }()

    func fineTuneSettings(base: String, out: String, extra: Settings = [:]) -> Settings {
        let s: Settings = [
            "init-from": .string(base), "corpus": .string(Self.otherCorpus),
            "data-dir": .string(Fixture.root + "/data"),
            "out": .string(out), "steps": 4, "batch-size": 4, "eval-every": 4, "eval-windows": 4, "sample-tokens": 0,
            "lr": 1e-3, "threads": 1,
        ]
        return s.merging(extra)
    }

    @Test func startsFromTheBaseWeightsWithItsArchitectureAndTokenizer() throws {
        let base = Fixture.newDir("base")
        _ = try Fixture.run(Fixture.settings("ngpt", steps: 8, out: base))
        let out = Fixture.newDir("finetune")
        try firstRun(base: base, out: out)
        // and it resumes like any run (the first trainer, holding the directory's lock, is gone)
        let more = try Fixture.run(["steps": 6], resume: out)
        #expect(more.steps == 6)
    }

    func firstRun(base: String, out: String) throws {
        let trainer = try Trainer(
            fileSettings: nil, flagSettings: fineTuneSettings(base: base, out: out), resume: nil, force: false,
            printer: ProgressPrinter(isTerminal: false))
        let baseConfig = try TrainConfig.fromJSON(String(contentsOfFile: base + "/config.json", encoding: .utf8))
        #expect(trainer.config.model == baseConfig.model)
        #expect(trainer.config.schedule.steps == 4 && trainer.config.schedule.lr == 1e-3)
        // the initial model is the base run's best checkpoint; the optimiser starts fresh
        let (model, optimizer, resumed) = try trainer.makeModel()
        let loaded = try LoadedModel.load(checkpoint: base)
        #expect(resumed == nil && optimizer.step == 0)
        #expect(
            Array(UnsafeBufferPointer(start: model.params.pointer, count: model.params.count))
                == Array(UnsafeBufferPointer(start: loaded.model.params.pointer, count: loaded.model.params.count)))
        #expect(UnsafeBufferPointer(start: optimizer.m.pointer, count: optimizer.m.count).allSatisfy { $0 == 0 })

        let summary = try trainer.run()
        #expect(summary.steps == 4 && summary.finalValLoss.isFinite)
        // the new corpus was encoded with the base tokenizer, which the new run keeps
        #expect(
            FileManager.default.contents(atPath: out + "/tokenizer.model")
                == FileManager.default.contents(atPath: base + "/tokenizer.model"))
        let stored = try TrainConfig.fromJSON(String(contentsOfFile: out + "/config.json", encoding: .utf8))
        #expect(stored.initFrom == base && stored.data.corpus == Self.otherCorpus)
        #expect(Fixture.metrics(out).contains { $0["val_loss"] != nil })
    }

    @Test func conflictingArchitectureOrTokenizerIsRefused() throws {
        let base = Fixture.newDir("base")
        _ = try Fixture.run(Fixture.settings("gpt", steps: 4, out: base))
        func message(_ extra: Settings) -> String {
            do {
                _ = try Trainer(
                    fileSettings: nil,
                    flagSettings: fineTuneSettings(base: base, out: Fixture.newDir("x"), extra: extra),
                    resume: nil, force: false, printer: ProgressPrinter(isTerminal: false))
                return ""
            } catch let e as UserError { return e.message } catch { return "\(error)" }
        }
        #expect(message(["dim": 64]).contains("--dim 64 conflicts with --init-from"))
        #expect(message(["model": "ngpt"]).contains("--model ngpt conflicts"))
        #expect(message(["dim": 32, "vocab-size": 300]).isEmpty)  // the same values are fine
        try AtomicFile.write("not a tokenizer", to: Fixture.root + "/other.model")
        #expect(
            message(["tokenizer": .string(Fixture.root + "/other.model")]).contains(
                "encodes its corpus with the base run's tokenizer"))
        #expect(message(["init-from": .string(Fixture.root + "/nowhere")]).contains("not found"))
        try FileManager.default.createDirectory(atPath: Fixture.root + "/empty-run", withIntermediateDirectories: true)
        #expect(message(["init-from": .string(Fixture.root + "/empty-run")]).contains("holds no best.safetensors"))
    }
}
