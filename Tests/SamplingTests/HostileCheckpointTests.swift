import Common
import Foundation
import Kernels
import NGPT
import Runs
import TestSupport
import Testing
import Training

@testable import Sampling

/// A checkpoint is a file people download and share: it must be safe to open. A real checkpoint's header and
/// metadata are mutated a few hundred times (fixed seed): sizes in `ngpt.model` and in the stored training
/// configuration, tensor dtypes, shapes and byte ranges, missing and duplicate names, the header length,
/// truncation, random bytes. Every case loads or is refused with a `UserError` naming the file; none traps (that
/// would end this process), none takes a second, and none grows the process's peak memory by more than a small
/// multiple of the file.
@Suite(.serialized) struct HostileCheckpointTests {
    /// The fixture's header as ordered (key, JSON text) pairs, and its tensor bytes.
    struct Parts {
        var entries: [(String, String)]
        var data: [UInt8]

        init(_ bytes: [UInt8]) throws {
            let n = Int(
                bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
            let object = try #require(
                try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + n)])) as? [String: Any])
            entries = try object.keys.sorted().map { key in
                let text = String(
                    decoding: try JSONSerialization.data(withJSONObject: object[key]!, options: [.sortedKeys]),
                    as: UTF8.self)
                return (key, text)
            }
            data = Array(bytes[(8 + n)...])
        }

        func file(headerLength: Int? = nil) -> [UInt8] {
            var header = Array(("{" + entries.map { "\(Self.quote($0.0)):\($0.1)" }.joined(separator: ",") + "}").utf8)
            while header.count % 8 != 0 { header.append(0x20) }
            var out: [UInt8] = []
            withUnsafeBytes(of: UInt64(headerLength ?? header.count).littleEndian) { out += $0 }
            return out + header + data
        }

        static func quote(_ s: String) -> String {
            String(decoding: try! JSONSerialization.data(withJSONObject: [s], options: []), as: UTF8.self).dropFirst()
                .dropLast().description
        }

        func object(_ key: String) -> [String: Any] {
            let text = entries.first { $0.0 == key }!.1
            return (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:]
        }

        mutating func set(_ key: String, _ value: Any) {
            let text = String(
                decoding: try! JSONSerialization.data(
                    withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed]), as: UTF8.self)
            if let i = entries.firstIndex(where: { $0.0 == key }) {
                entries[i].1 = text
            } else {
                entries.append((key, text))
            }
        }

        /// Sets one key of a JSON document stored as a metadata string (ngpt.model, ngpt.config).
        mutating func setInMetadata(_ metadataKey: String, _ key: String, _ value: Any) {
            var meta = object("__metadata__")
            var inner =
                (try? JSONSerialization.jsonObject(with: Data(((meta[metadataKey] as? String) ?? "{}").utf8))
                    as? [String: Any]) ?? [:]
            inner[key] = value
            meta[metadataKey] = String(
                decoding: try! JSONSerialization.data(
                    withJSONObject: inner, options: [.sortedKeys, .fragmentsAllowed]),
                as: UTF8.self)
            set("__metadata__", meta)
        }
    }

    nonisolated(unsafe) static let hostileNumbers: [Any] = [
        0, -1, 1, 3, 7, 1 << 20, 1 << 31, 1_000_000_000, 1 << 40, 1 << 62, Int.max, Int.min, 1e30, 2.5, -0.0,
        "12", NSNull(),
    ]

    /// One mutated file per case, from a fixed seed.
    static func cases(_ original: [UInt8]) throws -> [(String, [UInt8])] {
        var rng = SplitMix64(seed: 2112)
        func pick<T>(_ xs: [T]) -> T { xs[rng.below(xs.count)] }
        let base = try Parts(original)
        let tensorNames = base.entries.map(\.0).filter { $0 != "__metadata__" }
        var out: [(String, [UInt8])] = []
        // sizes of the model, one at a time and several at once
        let modelKeys = ["vocabSize", "dim", "layers", "heads", "mlpHidden", "context"]
        for key in modelKeys {
            for value in hostileNumbers {
                var p = base
                p.setInMetadata("ngpt.model", key, value)
                out.append(("ngpt.model \(key)=\(value)", p.file()))
            }
        }
        for i in 0..<30 {
            var p = base
            for key in modelKeys where rng.below(2) == 0 { p.setInMetadata("ngpt.model", key, pick(hostileNumbers)) }
            out.append(("ngpt.model random \(i)", p.file()))
        }
        var p = base
        p.setInMetadata("ngpt.model", "kind", "transformer-xl")
        out.append(("ngpt.model kind", p.file()))
        // the stored training configuration (what --resume reads)
        for key in [
            "batch-size", "grad-accum", "steps", "context", "eval-windows", "threads", "processes", "lr", "seed",
        ] {
            for value in [0, -1, 1 << 62, Int.max, 1e300] as [Any] {
                var p = base
                p.setInMetadata("ngpt.config", key, value)
                out.append(("ngpt.config \(key)=\(value)", p.file()))
            }
        }
        for key in ["ngpt.step", "ngpt.tokens", "ngpt.adam_step"] {
            for value in ["-5", "99999999999999999999999", "1e400", "", "nan"] {
                var p = base
                var meta = p.object("__metadata__")
                meta[key] = value
                p.set("__metadata__", meta)
                out.append(("\(key)=\(value)", p.file()))
            }
        }
        // tensor entries: dtype, shape, offsets, missing, duplicated
        for i in 0..<120 {
            var p = base
            let name = pick(tensorNames)
            var entry = p.object(name)
            switch i % 6 {
            case 0: entry["dtype"] = pick(["F16", "BF16", "F64", "I64", "U8", "Q4", "", "f32"])
            case 1:
                entry["shape"] = (0..<rng.below(4)).map { _ in
                    pick([0, 1, 32, 48, 300, 1 << 31, 1 << 62, Int.max, -1] as [Any])
                }
            case 2:
                entry["data_offsets"] = [
                    pick([0, 4, 128, Int.max, -1, 1 << 53] as [Any]), pick([0, 128, 1 << 62, Int.max, -8] as [Any]),
                ]
            case 3: entry["data_offsets"] = [1, 2, 3]
            case 4: entry["shape"] = "32"
            default:
                var e = entry
                e["shape"] = [pick([31, 33, 64, 1])]
                entry = e
            }
            p.set(name, entry)
            out.append(("tensor \(name) #\(i)", p.file()))
        }
        for i in 0..<10 {
            var p = base
            p.entries.removeAll { $0.0 == tensorNames[i * 7 % tensorNames.count] }
            out.append(("missing tensor #\(i)", p.file()))
        }
        for i in 0..<10 {
            var p = base
            let e = p.entries[1 + rng.below(p.entries.count - 1)]
            p.entries.append(e)  // the same name twice
            out.append(("duplicate \(e.0) #\(i)", p.file()))
        }
        // the header length, truncation, random bytes
        let header = base.file().count - base.data.count - 8
        for length in [0, 1, 7, header - 8, header + 8, original.count, 100_000_001, 1 << 40, Int(Int64.max)] {
            out.append(("header length \(length)", base.file(headerLength: length)))
        }
        for i in 0..<20 {
            let cut = rng.below(original.count)
            out.append(("truncated at \(cut) #\(i)", Array(original[..<cut])))
        }
        for i in 0..<40 {
            var bytes = original
            for _ in 0..<(1 + rng.below(4)) { bytes[8 + rng.below(header)] = UInt8(rng.below(256)) }
            out.append(("header bytes #\(i)", bytes))
        }
        return out
    }

    static func peakResidentBytes() -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
        return (line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0) * 1024
    }

    /// Writing 5 to /proc/self/clear_refs resets the peak resident size (Linux), so each case's peak is its own.
    static func resetPeak() -> Bool {
        let fd = open("/proc/self/clear_refs", O_WRONLY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return write(fd, "5", 1) == 1
    }

    @Test func mutatedCheckpointsLoadOrAreRefusedNamingTheFile() throws {
        let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: try fixture("tiny-ngpt.safetensors"))))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ngpt-hostile-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: try fixture("tokenizer.model"), toPath: dir + "/tokenizer.model")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cases = try Self.cases(original)
        #expect(cases.count >= 300)
        let measuresPeak = Self.resetPeak()
        var loaded = 0, refused = 0
        for (index, (label, bytes)) in cases.enumerated() {
            let path = dir + "/case-\(index).safetensors"
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            _ = Self.resetPeak()
            let before = Self.peakResidentBytes()
            let started = Date()
            do {
                _ = try LoadedModel.load(checkpoint: path)
                loaded += 1
            } catch let e as UserError {
                refused += 1
                #expect(e.message.contains(path), "\(label): \(e.message)")
                #expect(!e.message.contains("\n"), "\(label): more than one line")
            } catch {
                Issue.record("\(label): not a UserError: \(error)")
            }
            // the resume path reads the moments and the stored training configuration too
            if let file = try? SafeTensors(path: path),
                let state = try? Checkpoint.read(file, path: path, moments: true),
                let stored = state.extra["ngpt.config"]
            {
                do { try TrainConfig.fromJSON(stored).validate() } catch let e as UserError {
                    #expect(!e.message.isEmpty)
                }
            }
            let seconds = Date().timeIntervalSince(started)
            #expect(seconds < 1, "\(label): \(seconds) s")
            if measuresPeak {
                let grown = Self.peakResidentBytes() - before
                #expect(grown < 16 * bytes.count + 64_000_000, "\(label): the peak grew by \(grown) bytes")
            }
            try FileManager.default.removeItem(atPath: path)
        }
        #expect(loaded > 0 && refused > 250, "loaded \(loaded), refused \(refused)")
    }

    /// The sizes of a checkpoint are reported as its keys, naming the file, never as flags the user did not pass.
    @Test func badSizesNameTheFileAndTheKey() throws {
        let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: try fixture("tiny-ngpt.safetensors"))))
        var parts = try Parts(original)
        parts.setInMetadata("ngpt.model", "heads", 64)
        parts.setInMetadata("ngpt.model", "dim", 96)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ngpt-badsizes-\(getpid()).safetensors"
        ).path
        try Data(parts.file()).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let error = #expect(throws: UserError.self) { _ = try LoadedModel.load(checkpoint: path) }
        #expect(
            error?.message.contains(path) == true && error?.message.contains("heads 64 must divide dim 96") == true
                && error?.message.contains("--") == false, "\(error?.message ?? "")")
        parts.setInMetadata("ngpt.model", "heads", 2)
        parts.setInMetadata("ngpt.model", "layers", 1 << 62)
        try Data(parts.file()).write(to: URL(fileURLWithPath: path))
        let huge = #expect(throws: UserError.self) { _ = try LoadedModel.load(checkpoint: path) }
        #expect(huge?.message.contains("layers 4611686018427387904 is too large") == true, "\(huge?.message ?? "")")
    }
}

/// Hostile input besides checkpoints: an empty stop text, endless standard input.
@Suite struct HostileInputTests {
    /// An empty stop text would match everywhere (and its hold-back was negative): the generator ignores it, the
    /// tool refuses it.
    @Test func anEmptyStopTextStopsNothing() throws {
        let m = try LoadedModel.load(checkpoint: try fixture("tiny-ngpt.safetensors"))
        let g = Generator(model: m.model, tokenizer: m.tokenizer)
        var a = Sampler(SamplerSettings(temperature: 0)), b = Sampler(SamplerSettings(temperature: 0))
        let plain = try g.generate(prompt: [], maxTokens: 20, sampler: &a)
        let withEmpty = try g.generate(prompt: [], maxTokens: 20, sampler: &b, stop: [""])
        #expect(withEmpty.text == plain.text && withEmpty.stoppedAt == nil)
    }

    /// A prompt on standard input is read up to a limit: `< /dev/zero` is refused in one line, not read forever.
    @Test func endlessStandardInputIsRefused() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: productsDirectory() + "/ngpt-sample")
        p.arguments = ["--checkpoint", try fixture("tiny-ngpt.safetensors"), "--max-tokens", "1"]
        p.standardInput = FileHandle(forReadingAtPath: "/dev/zero")
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        let started = Date()
        try p.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(
            p.terminationStatus == 1 && text.contains("error: the prompt on standard input is longer than 16 MB"),
            "\(text)")
        #expect(Date().timeIntervalSince(started) < 10)
    }
}
