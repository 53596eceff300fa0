import Common
import Foundation
import Kernels
import NGPT
import Runs
import Testing

@testable import Inspect

/// The tiny nGPT checkpoint of the sampling tests (its README says how it was made).
let tinyCheckpoint = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../SamplingTests/Fixtures/tiny-ngpt.safetensors").standardizedFileURL.path

func unitRandom(_ rows: Int, _ cols: Int, seed: UInt64) -> [Float] {
    var rng = SplitMix64(seed: seed)
    let x = (0..<(rows * cols)).map { _ in Float(rng.normal()) }
    return x.withUnsafeBufferPointer { Geometry.normalized($0.baseAddress!, rows: rows, cols: cols) }
}

@Suite struct GeometryTests {
    @Test func uniformityAndCosinesMatchADirectComputation() {
        let rows = 37, cols = 9
        let x = unitRandom(rows, cols, seed: 1)
        let p = Geometry.pairwise(unitRows: x, rows: rows, cols: cols)
        var expSum = 0.0, cosSum = 0.0, n = 0.0
        for i in 0..<rows {
            for j in (i + 1)..<rows {
                var d2 = 0.0, dot = 0.0
                for c in 0..<cols {
                    let a = Double(x[i * cols + c]), b = Double(x[j * cols + c])
                    d2 += (a - b) * (a - b); dot += a * b
                }
                expSum += exp(-2 * d2); cosSum += dot; n += 1
            }
        }
        #expect(abs(p.uniformity - log(expSum / n)) < 1e-5)
        #expect(abs(p.mean - cosSum / n) < 1e-6)
        #expect(abs(p.histogram.reduce(0, +) - 1) < 1e-12)
    }

    @Test func knownConfigurations() {
        // orthonormal vectors: cos 0, ‖x − y‖² = 2 → uniformity log e^(−4) = −4
        let d = 8
        var eye = [Float](repeating: 0, count: d * d)
        for i in 0..<d { eye[i * d + i] = 1 }
        let o = Geometry.pairwise(unitRows: eye, rows: d, cols: d)
        #expect(abs(o.uniformity + 4) < 1e-6 && abs(o.mean) < 1e-7)
        // identical vectors: cos 1 → uniformity log 1 = 0, alignment 0
        let same = [Float](repeating: 0.5, count: 4 * 4)
        #expect(abs(Geometry.pairwise(unitRows: same, rows: 4, cols: 4).uniformity) < 1e-6)
        #expect(Geometry.alignment(unitRows: same, cols: 4, pairs: [(0, 1), (2, 3)]) == 0)
        // antipodal pair: ‖x − y‖² = 4
        #expect(abs(Geometry.alignment(unitRows: [1, 0, -1, 0], cols: 2, pairs: [(0, 1)]) - 4) < 1e-12)
    }

    @Test func singularValuesOfAConstructedMatrix() {
        // A = U·diag(s)·Vᵀ with orthonormal U (5×3) and V (7×3), built by Gram–Schmidt.
        func orthonormal(_ rows: Int, _ k: Int, seed: UInt64) -> [[Double]] {
            var rng = SplitMix64(seed: seed)
            var cols: [[Double]] = []
            while cols.count < k {
                var v = (0..<rows).map { _ in rng.normal() }
                for c in cols { let p = zip(v, c).map(*).reduce(0, +); v = zip(v, c).map { $0 - p * $1 } }
                let norm = v.map { $0 * $0 }.reduce(0, +).squareRoot()
                cols.append(v.map { $0 / norm })
            }
            return cols
        }
        let s = [10.0, 2.5, 0.5], u = orthonormal(5, 3, seed: 1), v = orthonormal(7, 3, seed: 2)
        var a = [Float](repeating: 0, count: 5 * 7)
        for i in 0..<5 {
            for j in 0..<7 { a[i * 7 + j] = Float((0..<3).map { s[$0] * u[$0][i] * v[$0][j] }.reduce(0, +)) }
        }
        let got = a.withUnsafeBufferPointer { Geometry.singularValues($0.baseAddress!, rows: 5, cols: 7) }
        #expect(got.count == 5)
        for (g, e) in zip(got, s) { #expect(abs(g - e) < 1e-5 * e) }
        #expect(got[3] < 1e-5 && got[4] < 1e-5)
        #expect(abs(Geometry.conditionNumber(Array(got.prefix(3))) - 20) < 1e-4)
        #expect(Geometry.conditionNumber([3, 0]) == .infinity)
    }
}

@Suite struct InspectorTests {
    @Test func ngptHiddenStatesAreUnitAndTheReportIsComplete() throws {
        let loaded = try LoadedModel.load(checkpoint: tinyCheckpoint)
        let text = (0..<200).map { _ in "the king fair, ☃ café." }.joined(separator: "\n")
        let r = try Inspector.inspect(loaded, neighbours: ["fair"], text: text, maxTokens: 128)
        #expect(r.model == "ngpt" && r.embeddings.count == 2 && r.scales.count == 2 && r.conditioning.count == 2)
        let hidden = try #require(r.hidden)
        #expect(hidden.blockNorms.count == 2)
        for s in hidden.blockNorms { #expect(abs(s.min - 1) < 1e-5 && abs(s.max - 1) < 1e-5) }
        #expect(r.embeddings.allSatisfy { abs($0.rowNorms.mean - 1) < 1e-5 })  // renormalised embeddings
        #expect(r.conditioning[0].query.count == 2 && r.conditioning[0].query.allSatisfy { $0 >= 1 })
        #expect(r.neighbours.first?.neighbours.count == 5)
        // JSON schema: the keys a reader relies on
        let data = try JSONEncoder().encode(r)
        let json = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        for key in [
            "checkpoint", "model", "step", "embeddings", "scales", "conditioning", "neighbours", "hidden", "szMean",
        ] {
            #expect(json?[key] != nil, "missing \(key)")
        }
        let emb = (json?["embeddings"] as? [[String: Any]])?.first
        #expect((emb?["cosines"] as? [String: Any])?["uniformity"] is Double)
        let text1 = InspectionOutput.text([r, r])
        #expect(text1.contains("E_in uniformity") && text1.contains("layer 1 α_A / α_M mean"))
    }

    @Test func badInputsAreClearErrors() throws {
        #expect(throws: UserError.self) { _ = try LoadedModel.load(checkpoint: "/nonexistent/run") }
        let loaded = try LoadedModel.load(checkpoint: tinyCheckpoint)
        let error = #expect(throws: UserError.self) {
            _ = try Inspector.inspect(loaded, neighbours: ["zyzzyva"], text: nil)
        }
        #expect(error?.message.contains("not a single token") == true)
        // a plot directory that cannot be made: one line with the system's reason
        let r = try Inspector.inspect(loaded, neighbours: [], text: nil)
        let plot = #expect(throws: UserError.self) { _ = try InspectionOutput.plots([r], directory: "/proc/ngpt-x") }
        #expect(
            plot?.message.contains("cannot create directory /proc/ngpt-x") == true
                && plot?.message.contains("--plot") == true)
    }

    @Test func plotsAreWritten() throws {
        let loaded = try LoadedModel.load(checkpoint: tinyCheckpoint)
        let r = try Inspector.inspect(loaded, neighbours: [], text: nil)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("inspect-\(UUID().uuidString)").path
        let files = try InspectionOutput.plots([r], directory: dir)
        #expect(files.count == 3)
        for name in ["scales", "spectra", "cosines"] {
            #expect(FileManager.default.fileExists(atPath: dir + "/\(name).svg"))
        }
    }
}
