import Common
import Foundation
import Kernels
import Testing

@testable import NGPT

@Suite struct SafeTensorsTests {
    /// The format's own golden vector (safetensors tensor.rs, test_serialization_forced_alignement): one F32
    /// tensor "attn0" of shape [1,1,2,3] with values 0…5 is 104 bytes: N = 72 (65 bytes of JSON + 7 spaces).
    @Test func goldenVectorByteForByte() throws {
        let bytes = SafeTensors.serialize(
            [.init(name: "attn0", shape: [1, 1, 2, 3], floats: [0, 1, 2, 3, 4, 5])], metadata: [:])
        var expected: [UInt8] = [72, 0, 0, 0, 0, 0, 0, 0]
        expected +=
            Array(#"{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}"#.utf8)
            + Array(repeating: 0x20, count: 7)
        for v: Float in [0, 1, 2, 3, 4, 5] { withUnsafeBytes(of: v.bitPattern.littleEndian) { expected += $0 } }
        #expect(bytes.count == 104)
        #expect(bytes == expected)
        let back = try SafeTensors(bytes: bytes)
        #expect(try back.floats("attn0") == [0, 1, 2, 3, 4, 5])
        #expect(back.entries["attn0"]?.shape == [1, 1, 2, 3])
    }

    @Test func roundTripWithMetadataAndIntegers() throws {
        let meta = ["format": "pt", "config": #"{"dim": 32, "name": "a \"quoted\" value\n"}"#]
        let bytes = SafeTensors.serialize(
            [
                .init(name: "b", shape: [2, 2], floats: [1.5, -2, 3.25, 1e-30]),
                .init(name: "a", shape: [], floats: [42]),
                .init(name: "step", shape: [1], int64s: [123_456_789_012]),
                .init(name: "empty", shape: [0, 3], floats: []),
            ], metadata: meta)
        #expect((8 + Int(bytes[0])) % 8 == 0)  // data starts 8-aligned
        let f = try SafeTensors(bytes: bytes)
        #expect(f.metadata == meta)
        #expect(try f.floats("b") == [1.5, -2, 3.25, 1e-30])
        #expect(try f.floats("a") == [42])
        #expect(try f.integers("step") == [123_456_789_012])
        #expect(try f.floats("empty").isEmpty)
        #expect(throws: UserError.self) { try f.floats("missing") }
    }

    /// Headers are built by hand to hit each malformation the reader must refuse.
    @Test func malformedFilesAreRejected() throws {
        func file(_ header: String, dataBytes: Int, lengthOverride: UInt64? = nil) -> [UInt8] {
            let h = Array(header.utf8)
            var out: [UInt8] = []
            withUnsafeBytes(of: (lengthOverride ?? UInt64(h.count)).littleEndian) { out += $0 }
            return out + h + [UInt8](repeating: 0, count: dataBytes)
        }
        func message(_ bytes: [UInt8]) -> String {
            do { _ = try SafeTensors(bytes: bytes); return "accepted" } catch let e as UserError {
                return e.message
            } catch { return "\(error)" }
        }
        let t = { (name: String, b: Int, e: Int) in
            "\"\(name)\":{\"dtype\":\"F32\",\"shape\":[\((e - b) / 4)],\"data_offsets\":[\(b),\(e)]}"
        }
        #expect(message(file("{" + t("a", 0, 8) + "," + t("b", 4, 12) + "}", dataBytes: 12)).contains("overlaps"))
        #expect(message(file("{" + t("a", 0, 8) + "," + t("b", 12, 16) + "}", dataBytes: 16)).contains("hole"))
        #expect(message(file("{" + t("a", 0, 8) + "}", dataBytes: 4)).contains("truncated"))
        #expect(message(file("{" + t("a", 0, 8) + "}", dataBytes: 12)).contains("trailing"))
        #expect(
            message(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", dataBytes: 8)).contains(
                "bytes for shape"))
        #expect(
            message(file("{\"a\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]}}", dataBytes: 8)).contains(
                "unknown dtype"))
        #expect(message(file("{not json", dataBytes: 0)).contains("not valid JSON"))
        #expect(message(file("[1,2]", dataBytes: 0)).contains("not a JSON object"))
        #expect(message(file("{\"__metadata__\":{\"k\":1}}", dataBytes: 0)).contains("not a string"))
        #expect(message(file("{}", dataBytes: 0, lengthOverride: 200_000_000)).contains("100 MB"))
        #expect(message(file("{}", dataBytes: 0, lengthOverride: 50)).contains("truncated"))
        #expect(message([1, 2, 3]).contains("truncated"))
        // An unaligned (but valid) file: header length 2 + 1 tensor; values are copied out correctly.
        var unaligned = file("{" + t("a", 0, 8) + "} ", dataBytes: 0)
        for v: Float in [3.5, -1] { withUnsafeBytes(of: v.bitPattern.littleEndian) { unaligned += $0 } }
        #expect(try SafeTensors(bytes: unaligned).floats("a") == [3.5, -1])
    }

    /// Python's `safetensors` (the reference implementation) loads a file we wrote with identical values,
    /// and we load a file it wrote.
    @Test func interoperatesWithPythonSafetensors() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("st-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let values: [Float] = (0..<24).map { Float($0) * 0.37 - 3 }
        let ours = SafeTensors.serialize(
            [
                .init(name: "layers.0.attn.wq", shape: [4, 6], floats: values),
                .init(name: "s_z", shape: [3], floats: [1, 2, 3]),
            ], metadata: ["format": "pt"])
        try Data(ours).write(to: URL(fileURLWithPath: dir + "/ours.safetensors"))
        let script = """
            import sys, struct
            from safetensors.numpy import load_file, save_file
            import numpy as np
            d = sys.argv[1]
            t = load_file(d + '/ours.safetensors')
            w = t['layers.0.attn.wq']
            print(w.shape, w.dtype, ' '.join(repr(float(x)) for x in w.reshape(-1)))
            save_file({'x': np.arange(6, dtype=np.float32).reshape(2, 3) / 8}, d + '/theirs.safetensors',
                      metadata={'format': 'pt'})
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script, dir]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        if p.terminationStatus != 0 {
            Issue.record("python3 with safetensors and numpy is needed (pip install safetensors numpy): \(errText)")
        }
        try #require(p.terminationStatus == 0)
        #expect(text.hasPrefix("(4, 6) float32"))
        let parsed = text.split(separator: "\n")[0].split(separator: " ").dropFirst(3).compactMap { Float(String($0)) }
        #expect(parsed == values)
        let theirs = try SafeTensors(path: dir + "/theirs.safetensors")
        #expect(try theirs.floats("x") == [0, 0.125, 0.25, 0.375, 0.5, 0.625])
        #expect(theirs.metadata["format"] == "pt")
    }
}
