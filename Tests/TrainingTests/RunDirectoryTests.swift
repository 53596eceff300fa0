import Common
import Foundation
import Kernels
import Runs
import TestSupport
import Testing
import Tokenizer

@testable import NGPT
@testable import Training

/// Run directories never lose data (issue 12): nothing is destroyed before a new run is valid, one writer at a
/// time, no orphans, memory checked before anything is created, checkpoints must belong to their run.
@Suite(.serialized) struct RunDirectoryTests {
    static func files(_ dir: String) -> [String: Data] {
        var out: [String: Data] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where name != ".lock" {
            out[name] = FileManager.default.contents(atPath: dir + "/" + name)
        }
        return out
    }

    /// `--force` with a bad corpus, an empty one, a garbage tokenizer or a too-small vocabulary fails and leaves the
    /// old run exactly as it was; a valid `--force` run replaces it and leaves nothing aside.
    @Test func forceDestroysNothingUntilTheNewRunIsValid() throws {
        let dir = Fixture.newDir("force")
        _ = try Fixture.run(Fixture.settings("ngpt", steps: 2, out: dir))
        let before = Self.files(dir)
        #expect(before["latest.safetensors"] != nil && before["metrics.jsonl"] != nil)
        try AtomicFile.write("", to: Fixture.root + "/empty.txt")
        try AtomicFile.write("not a model", to: Fixture.root + "/garbage.model")
        for bad: Settings in [
            ["corpus": .string(Fixture.root + "/missing.txt")], ["corpus": .string(Fixture.root + "/empty.txt")],
            ["tokenizer": .string(Fixture.root + "/garbage.model")],
            ["vocab-size": 10, "data-dir": .string(Fixture.root + "/data10")],
        ] {
            #expect(throws: UserError.self) {
                _ = try Fixture.run(Fixture.settings("gpt", steps: 2, out: dir, extra: bad), force: true)
            }
            #expect(Self.files(dir) == before, "\(bad) changed the old run")
        }
        _ = try Fixture.run(Fixture.settings("gpt", steps: 2, out: dir), force: true)
        let after = Self.files(dir)
        #expect(after[".replaced"] == nil && after["latest.safetensors"] != before["latest.safetensors"])
        #expect(try Checkpoint.read(try SafeTensors(path: dir + "/latest.safetensors"), path: "").model.kind == .gpt)
        // A new run that fails before its first checkpoint removes the directory it created.
        let fresh = Fixture.newDir("fresh")
        #expect(throws: UserError.self) {
            _ = try Fixture.run(Fixture.settings("ngpt", steps: 2, out: fresh, extra: ["corpus": "/nonexistent"]))
        }
        #expect(!FileManager.default.fileExists(atPath: fresh))
    }

    /// One writer at a time: a second trainer on the same directory is refused, naming the holder's pid; the
    /// lock goes with its holder.
    @Test func aSecondWriterIsRefused() throws {
        let dir = Fixture.newDir("lock")
        _ = try Fixture.run(Fixture.settings("ngpt", steps: 2, out: dir))
        var holder: RunDirectory? = try RunDirectory(claiming: dir, force: false, resuming: true)
        let error = #expect(throws: UserError.self) { _ = try Fixture.run(["steps": 3, "threads": 1], resume: dir) }
        #expect(
            error?.message.contains("in use by another ngpt-train (pid \(getpid()))") == true, "\(error?.message ?? "")"
        )
        #expect(throws: UserError.self) {
            _ = try Fixture.run(Fixture.settings("ngpt", steps: 2, out: dir), force: true)
        }
        #expect(FileManager.default.fileExists(atPath: dir + "/latest.safetensors"))
        // a reader is not a writer
        #expect(try LoadedModel.load(checkpoint: dir).step == 2)
        _ = holder
        holder = nil
        #expect(try Fixture.run(["steps": 3, "threads": 1], resume: dir).steps == 3)
    }

    /// Two processes on one --out: the second gets one line naming the first's pid and exits 1; the first goes on.
    @Test func aSecondProcessIsRefused() throws {
        let exe = productsDirectory() + "/ngpt-train"
        let dir = Fixture.newDir("lock2")
        _ = try Fixture.run(Fixture.settings("ngpt", steps: 1, out: Fixture.newDir("warm2")))  // data prepared
        let args = [
            "--layers", "2", "--dim", "32", "--heads", "2", "--mlp-hidden", "48", "--context", "32", "--vocab-size",
            "300",
            "--batch-size", "4", "--steps", "100000", "--eval-every", "100000", "--sample-tokens", "0",
            "--corpus", Fixture.root + "/corpus", "--data-dir", Fixture.root + "/data", "--log-every", "1", "--threads",
            "1",
            "--out", dir,
        ]
        let first = Process()
        first.executableURL = URL(fileURLWithPath: exe)
        first.arguments = args
        first.standardOutput = FileHandle.nullDevice
        first.standardError = FileHandle.nullDevice
        try first.run()
        defer { if first.isRunning { kill(first.processIdentifier, SIGKILL) } }
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline && Fixture.metrics(dir).isEmpty { usleep(10_000) }
        for extra in [[String](), ["--force"]] {
            let (status, _, err) = try runProcess([exe] + args + extra)
            #expect(
                status == 1 && err.contains("in use by another ngpt-train (pid \(first.processIdentifier))"), "\(err)")
        }
        #expect(first.isRunning)
        kill(first.processIdentifier, SIGINT)
        first.waitUntilExit()
        #expect(first.terminationStatus == 0)
    }

    /// Temp files of a killed writer are removed when the directory is next claimed.
    @Test func orphanedTempFilesAreCleaned() throws {
        let dir = Fixture.newDir("orphans")
        _ = try Fixture.run(Fixture.settings("ngpt", steps: 2, out: dir), stopAfter: 1)
        for name in ["latest.safetensors.tmp-999999-12345", "config.json.tmp-1-2", ".write-test-999999"] {
            try AtomicFile.write("partial", to: dir + "/" + name)
        }
        _ = try Fixture.run(["threads": 1], resume: dir)
        let left = try FileManager.default.contentsOfDirectory(atPath: dir).filter {
            $0.contains(".tmp-") || $0.hasPrefix(".write-test")
        }
        #expect(left.isEmpty, "\(left)")
    }

    /// The estimate is what the models allocate, and a configuration that cannot fit is refused before anything
    /// is created.
    @Test(arguments: [ModelKind.ngpt, .gpt])
    func memoryIsEstimatedAndCheckedFirst(kind: ModelKind) throws {
        let config = ModelConfig(kind: kind, vocabSize: 300, dim: 32, layers: 2, heads: 2, mlpHidden: 48, context: 16)
        let model = try makeModel(config)
        let batch = 3, n = batch * config.context
        let ids = [Int32](repeating: 1, count: n)
        _ = model.forward(inputs: ids, targets: ids, batch: batch)
        let allocated: Int
        if let m = model as? NGPTModel {
            allocated = m.activations.sets[batch]!.arena.count + m.scaled.arena.count
        } else {
            allocated = (model as! GPTModel).activations.sets[batch]!.arena.count
        }
        #expect(kind.modelType.workingFloats(config, batch: batch) == allocated)

        var c = TrainConfig()
        c.model = ModelConfig(kind: kind, context: 30_000)
        let estimate = MemoryEstimate(c)
        #expect(estimate.totalBytes > 100_000_000_000)
        let error = #expect(throws: UserError.self) { try estimate.check(available: 24_000_000_000) }
        #expect(error?.message.contains("needs about") == true && error?.message.contains("is available") == true)
        let dir = Fixture.newDir("huge")
        #expect(throws: UserError.self) {
            _ = try Fixture.run(Fixture.settings(kind.rawValue, steps: 2, out: dir, extra: ["context": 30_000]))
        }
        #expect(!FileManager.default.fileExists(atPath: dir))
        try MemoryEstimate(TrainConfig()).check()  // config S fits
    }

    /// A checkpoint from another run (another configuration, another tokenizer) is refused on resume, and
    /// nothing in the directory changes.
    @Test func foreignCheckpointsAreRefused() throws {
        let run = Fixture.newDir("own"), other = Fixture.newDir("other"), otherTokenizer = Fixture.newDir("othertok")
        _ = try Fixture.run(Fixture.settings("ngpt", steps: 2, out: run), stopAfter: 1)
        _ = try Fixture.run(Fixture.settings("ngpt", steps: 2, out: other, extra: ["dim": 64]), stopAfter: 1)
        try AtomicFile.write(
            String(repeating: "a different corpus with other words entirely.\n", count: 400),
            to: Fixture.root + "/other.txt")
        _ = try Fixture.run(
            Fixture.settings(
                "ngpt", steps: 2, out: otherTokenizer, extra: ["corpus": .string(Fixture.root + "/other.txt")]),
            stopAfter: 1)
        for (source, reason) in [(other, "its dim is 64"), (otherTokenizer, "another tokenizer")] {
            try FileManager.default.removeItem(atPath: run + "/latest.safetensors")
            try FileManager.default.copyItem(
                atPath: source + "/latest.safetensors", toPath: run + "/latest.safetensors")
            let before = Self.files(run)
            let error = #expect(throws: UserError.self) { _ = try Fixture.run(["threads": 1], resume: run) }
            #expect(
                error?.message.contains("does not belong to the run") == true
                    && error?.message.contains(reason) == true,
                "\(error?.message ?? "")")
            #expect(Self.files(run) == before)
        }
    }

    /// A killed writer leaves at most a half-written metrics line; the next writer cuts it.
    @Test func aHalfWrittenMetricsLineIsCut() throws {
        let dir = Fixture.newDir("halfline")
        _ = try Fixture.run(Fixture.settings("ngpt", steps: 4, out: dir, extra: ["log-every": 1]), stopAfter: 2)
        let handle = try #require(FileHandle(forWritingAtPath: dir + "/metrics.jsonl"))
        handle.seekToEndOfFile()
        handle.write(Data("{\"step\": 3, \"tra".utf8))
        try handle.close()
        _ = try Fixture.run(["threads": 1], resume: dir)
        let lines = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(lines.allSatisfy { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) != nil })
        #expect(Fixture.metrics(dir).contains { $0["step"] as? Int == 4 })
    }
}

/// Crash consistency: `kill -9` at random moments (checkpoints every step, so many kills land inside writes);
/// every time the directory loads, resumes, and holds no orphans once claimed again.
@Suite(.serialized) struct CrashConsistencyTests {
    @Test func killNineAtRandomMomentsNeverLosesTheRun() throws {
        let exe = productsDirectory() + "/ngpt-train"
        let dir = Fixture.newDir("kill9")
        _ = try Fixture.run(Fixture.settings("ngpt", steps: 1, out: Fixture.newDir("warm")))  // data prepared
        let args = [
            "--model", "ngpt", "--layers", "2", "--dim", "32", "--heads", "2", "--mlp-hidden", "48", "--context", "32",
            "--vocab-size", "300", "--batch-size", "4", "--steps", "100000", "--eval-every", "1", "--eval-windows", "2",
            "--sample-tokens", "0", "--corpus", Fixture.root + "/corpus", "--data-dir", Fixture.root + "/data",
            "--log-every", "1",
            "--threads", "1",
        ]
        var rng = SplitMix64(seed: 42)
        var lastStep = 0
        for round in 0..<12 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: exe)
            p.arguments = round == 0 ? args + ["--out", dir] : ["--resume", dir, "--threads", "1"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            // wait until this process trains, then kill it at a random moment within the next ~150 ms
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline && (Fixture.metrics(dir).compactMap { $0["step"] as? Int }.max() ?? 0) <= lastStep {
                usleep(5_000)
            }
            usleep(UInt32(rng.below(150_000)))
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            // the latest checkpoint always loads, and a new claim leaves no orphans
            let state = try Checkpoint.read(try SafeTensors(path: dir + "/latest.safetensors"), path: dir)
            #expect(
                state.step >= lastStep, "round \(round): the checkpoint went back from \(lastStep) to \(state.step)")
            lastStep = state.step
            _ = try RunDirectory(claiming: dir, force: false, resuming: true)
            let orphans = try FileManager.default.contentsOfDirectory(atPath: dir).filter {
                $0.contains(".tmp-") || $0.hasPrefix(".write-test")
            }
            #expect(orphans.isEmpty, "round \(round): \(orphans)")
        }
        let summary = try Fixture.run(["steps": .int(lastStep + 2), "threads": 1], resume: dir)
        #expect(summary.steps == lastStep + 2 && summary.interrupted == nil)
    }
}

/// The window of a `--force` run before its first checkpoint: the previous run's files wait in `.replaced/`.
/// Readers find them there at every moment, `kill -9` leaves a directory that loads (and the next claim restores
/// it), and a stop signal brings the previous run back instead of replacing it with a checkpoint of a run barely
/// begun.
@Suite(.serialized) struct ForceWindowTests {
    @Test func theOldRunStaysReadableUntilTheNewRunsFirstCheckpoint() throws {
        let exe = productsDirectory() + "/ngpt-train"
        let dir = Fixture.newDir("forcewindow")
        _ = try Fixture.run(Fixture.settings("ngpt", steps: 2, out: dir))
        let old = try #require(FileManager.default.contents(atPath: dir + "/latest.safetensors"))
        // the new run would write its first checkpoint only when it stops: the whole run is the window
        let args = [
            "--force", "--model", "gpt", "--layers", "2", "--dim", "32", "--heads", "2", "--mlp-hidden", "48",
            "--context", "32",
            "--vocab-size", "300", "--batch-size", "4", "--steps", "100000", "--eval-every", "100000",
            "--sample-tokens", "0",
            "--corpus", Fixture.root + "/corpus", "--data-dir", Fixture.root + "/data", "--threads", "1", "--out", dir,
        ]
        var rng = SplitMix64(seed: 7)
        for round in 0..<10 {
            let signal = round % 2 == 0 ? SIGKILL : SIGTERM
            let p = Process()
            p.executableURL = URL(fileURLWithPath: exe)
            p.arguments = args
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            let deadline = Date().addingTimeInterval(Double(rng.below(1_200)) / 1000)
            var reads = 0
            while Date() < deadline {
                // a reader at any moment finds a checkpoint: the old run's
                let loaded = try LoadedModel.load(checkpoint: dir)
                #expect(loaded.model.config.kind == .ngpt && loaded.step == 2, "round \(round)")
                reads += 1
                usleep(UInt32(rng.below(50_000)))
            }
            kill(p.processIdentifier, signal)
            p.waitUntilExit()
            #expect(reads > 0)
            let loaded = try LoadedModel.load(checkpoint: dir)
            #expect(loaded.model.config.kind == .ngpt && loaded.step == 2, "round \(round) (signal \(signal))")
            if signal == SIGTERM {
                #expect(p.terminationStatus != 0, "round \(round): a stopped --force run must not report success")
                #expect(
                    FileManager.default.contents(atPath: dir + "/latest.safetensors") == old,
                    "round \(round): the old run was not restored")
                #expect(!FileManager.default.fileExists(atPath: dir + "/.replaced"), "round \(round)")
            } else {
                _ = try RunDirectory(claiming: dir, force: false, resuming: true)  // the next claim restores it
                #expect(FileManager.default.contents(atPath: dir + "/latest.safetensors") == old, "round \(round)")
            }
        }
    }
}
