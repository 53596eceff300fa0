import Foundation
import NGPT
import Runs
import TestSupport
import Testing

@testable import Training

/// Data-parallel training: real `mpirun -np 2` jobs of the built ngpt-train against single processes.
let mpirunPath: String? = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first {
    FileManager.default.isExecutableFile(atPath: $0)
}

@Suite(.serialized, .enabled(if: mpirunPath != nil, "no mpirun (apt-get install openmpi-bin)"))
struct DataParallelTests {
    static let mpirun = mpirunPath

    /// Tiny runs on the fixture corpus, one thread per process, every step logged.
    static func flags(steps: Int, out: String) -> [String] {
        [
            "--model", "ngpt", "--layers", "2", "--dim", "32", "--heads", "2", "--mlp-hidden", "48", "--context", "32",
            "--vocab-size", "300", "--batch-size", "4", "--steps", "\(steps)", "--eval-every", "4", "--eval-windows",
            "4",
            "--sample-tokens", "0", "--corpus", Fixture.root + "/corpus", "--data-dir", Fixture.root + "/data", "--lr",
            "5e-3",
            "--threads", "1", "--log-every", "1", "--precision", "fp32", "--out", out,
        ]
    }

    /// Open MPI refuses to run as root (as CI does) without these.
    static func allowRunningAsRoot() {
        setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1)
        setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1)
    }

    /// Runs `mpirun -np n ngpt-train ARGS`.
    @discardableResult
    static func job(_ n: Int, _ args: [String]) throws -> (Int32, String, String) {
        allowRunningAsRoot()
        return try runProcess([mpirun!, "--oversubscribe", "-np", "\(n)", productsDirectory() + "/ngpt-train"] + args)
    }

    /// Starts `mpirun -np 2 ngpt-train ARGS` in the background (output discarded, or its stderr into `stderr`).
    static func launch(_ args: [String], stderr: String? = nil) throws -> Process {
        allowRunningAsRoot()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: mpirun!)
        p.arguments = ["--oversubscribe", "-np", "2", productsDirectory() + "/ngpt-train"] + args
        p.standardOutput = FileHandle.nullDevice
        if let stderr {
            _ = FileManager.default.createFile(atPath: stderr, contents: nil)
            p.standardError = FileHandle(forWritingAtPath: stderr)
        } else {
            p.standardError = FileHandle.nullDevice
        }
        p.standardInput = FileHandle.nullDevice
        try p.run()
        return p
    }

    /// The job's processes: mpirun's children.
    static func children(of p: Process) throws -> [Int32] {
        try String(contentsOfFile: "/proc/\(p.processIdentifier)/task/\(p.processIdentifier)/children", encoding: .utf8)
            .split(separator: " ").compactMap { Int32($0) }
    }

    static func losses(_ dir: String) -> [Double] {
        Fixture.metrics(dir).filter { $0["type"] as? String == "train" }.compactMap { $0["train_loss"] as? Double }
    }

    static func weights(_ dir: String) throws -> [Float] {
        let file = try SafeTensors(path: dir + "/latest.safetensors")
        return file.names.sorted().flatMap { (try? file.floats($0)) ?? [] }
    }

    /// Largest |a − b| relative to max |b|.
    static func relativeDifference(_ a: [Float], _ b: [Float]) -> Double {
        precondition(a.count == b.count && !a.isEmpty)
        let scale = b.map { Double(abs($0)) }.max() ?? 1
        return zip(a, b).map { Double(abs($0 - $1)) }.max()! / scale
    }

    /// 2 processes at batch B against 1 process with grad-accum 2 at batch B: the same sequences each step, so
    /// the same losses and weights — up to float round-off, not bit for bit: one process adds micro-batch 2's
    /// gradient into micro-batch 1's inside each kernel (row by row, slice by slice), two processes add finished
    /// gradients in the allreduce, so the sums are rounded in another order (measured ~1e-7 relative per step;
    /// Adam's division by √v can amplify it in the later steps, hence 1e-4 on the weights after 8 steps).
    @Test func twoProcessesMatchOneWithAccumulation() throws {
        _ = try Fixture.run(Fixture.settings("ngpt", steps: 1, out: Fixture.newDir("dp-warm")))  // data prepared once
        let two = Fixture.newDir("dp2"), one = Fixture.newDir("dp1")
        let (status, _, err) = try Self.job(2, Self.flags(steps: 8, out: two))
        #expect(status == 0, "\(err)")
        _ = try Fixture.run(
            Fixture.settings("ngpt", steps: 8, out: one, extra: ["grad-accum": 2, "log-every": 1, "precision": "fp32"]))
        let a = Self.losses(two), b = Self.losses(one)
        #expect(a.count == 8 && b.count == 8)
        for (x, y) in zip(a, b) { #expect(abs(x - y) <= 1e-5 * abs(y), "losses \(a) vs \(b)") }
        #expect(Self.relativeDifference(try Self.weights(two), try Self.weights(one)) < 1e-4)
        // rank 0 alone wrote the run directory, recording the job's shape
        let config = try TrainConfig.fromJSON(String(contentsOfFile: two + "/config.json", encoding: .utf8))
        #expect(config.processes == 2 && config.schedule.gradAccum == 1 && config.tokensPerStep == 2 * 4 * 32)
    }

    /// A run checkpointed by 2 processes resumes on 1 (grad-accum 1 → 2) and the reverse, continuing as the
    /// uninterrupted single-process run with grad-accum 2 does (tolerance as above).
    @Test func resumeOnAnotherNumberOfProcesses() throws {
        let reference = Fixture.newDir("dp-ref")
        _ = try Fixture.run(
            Fixture.settings(
                "ngpt", steps: 8, out: reference, extra: ["grad-accum": 2, "log-every": 1, "precision": "fp32"]))

        let twoThenOne = Fixture.newDir("dp-2to1")
        var (status, _, err) = try Self.job(2, Self.flags(steps: 8, out: twoThenOne) + ["--stop-after", "4"])
        #expect(status == 0, "\(err)")
        let resumed = try Fixture.run(["threads": 1], resume: twoThenOne)
        #expect(resumed.steps == 8)
        let config = try TrainConfig.fromJSON(String(contentsOfFile: twoThenOne + "/config.json", encoding: .utf8))
        #expect(config.processes == 1 && config.schedule.gradAccum == 2)

        let oneThenTwo = Fixture.newDir("dp-1to2")
        _ = try Fixture.run(
            Fixture.settings(
                "ngpt", steps: 8, out: oneThenTwo, extra: ["grad-accum": 2, "log-every": 1, "precision": "fp32"]),
            stopAfter: 4)
        (status, _, err) = try Self.job(2, ["--resume", oneThenTwo, "--threads", "1"])
        #expect(status == 0, "\(err)")

        let expected = try Self.weights(reference)
        for dir in [twoThenOne, oneThenTwo] {
            #expect(Self.relativeDifference(try Self.weights(dir), expected) < 1e-4, "\(dir)")
            let a = Self.losses(dir).suffix(4), b = Self.losses(reference).suffix(4)
            for (x, y) in zip(a, b) { #expect(abs(x - y) <= 1e-4 * abs(y), "\(dir): \(Array(a)) vs \(Array(b))") }
        }
        // 3 processes cannot share 2 micro-batches per step: one clear error, nothing written
        let before = try Self.weights(oneThenTwo)
        (status, _, err) = try Self.job(3, ["--resume", oneThenTwo, "--steps", "10", "--threads", "1"])
        #expect(status != 0 && err.contains("cannot share evenly"), "\(err)")
        #expect(try Self.weights(oneThenTwo) == before)
    }

    /// A process that dies takes the job down with a message instead of leaving the others waiting; a bad
    /// path is one error line and a non-zero exit; the last checkpoint stays loadable.
    @Test func aKilledProcessEndsTheJob() throws {
        _ = try Fixture.run(Fixture.settings("ngpt", steps: 1, out: Fixture.newDir("dp-warm")))  // data prepared once
        let dir = Fixture.newDir("dp-kill")
        let log = Fixture.root + "/dp-kill-\(UUID().uuidString.prefix(8)).err"
        let p = try Self.launch(Self.flags(steps: 100_000, out: dir), stderr: log)
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && !FileManager.default.fileExists(atPath: dir + "/latest.safetensors") {
            usleep(20_000)
        }
        let children = try Self.children(of: p)
        #expect(children.count == 2)
        kill(try #require(children.last), SIGKILL)
        let killedAt = Date()
        while p.isRunning && Date().timeIntervalSince(killedAt) < 60 { usleep(50_000) }
        #expect(!p.isRunning, "the job hung after a process was killed")
        if p.isRunning { p.terminate() }
        p.waitUntilExit()
        #expect(p.terminationStatus != 0)
        _ = try Checkpoint.read(try SafeTensors(path: dir + "/latest.safetensors"), path: dir)
        // the survivor says so in the promised form (not "finishing this step": it cannot)
        let survivor = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(
            survivor.contains("error: process 0 of 2 on ") && survivor.contains("the launcher is ending the job"),
            "\(survivor)")
        #expect(!survivor.contains("finishing this step"), "\(survivor)")

        let (status, _, err) = try Self.job(
            2, Self.flags(steps: 4, out: Fixture.newDir("dp-bad")) + ["--corpus", "/nonexistent/corpus"])
        #expect(status != 0 && err.contains("error: process 0 of 2"), "\(err)")
    }

    /// SIGTERM (or SIGINT, SIGUSR1) to one process ends the job: every process stops after the same step, rank 0
    /// writes one checkpoint, exit 0. (SIGUSR1 to mpirun, which forwards it to every process, does the same by
    /// hand; here, signalled within a second of the start, mpirun took minutes to forward it, so it is not tested.)
    @Test func aSignalStopsEveryProcessWithOneCheckpoint() throws {
        _ = try Fixture.run(Fixture.settings("ngpt", steps: 1, out: Fixture.newDir("dp-warm")))  // data prepared once
        for (signal, toLauncher) in [(SIGTERM, false)] {
            let dir = Fixture.newDir("dp-signal")
            let p = try Self.launch(Self.flags(steps: 100_000, out: dir))
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline && (Fixture.metrics(dir).compactMap { $0["step"] as? Int }.max() ?? 0) < 6 {
                usleep(20_000)
            }
            #expect(Date() < deadline, "the job did not start training")
            let t0 = Date()
            kill(toLauncher ? p.processIdentifier : try #require(try Self.children(of: p).last), signal)
            p.waitUntilExit()
            #expect(Date().timeIntervalSince(t0) < 30, "the job took long to stop")
            #expect(p.terminationStatus == 0, "signal \(signal)")
            let state = try Checkpoint.read(try SafeTensors(path: dir + "/latest.safetensors"), path: dir)
            let logged =
                Fixture.metrics(dir).filter { $0["type"] as? String == "train" }.compactMap { $0["step"] as? Int }.max()
                ?? -1
            #expect(state.step == logged, "the checkpoint is at step \(state.step), the log at \(logged)")
        }
    }
}
