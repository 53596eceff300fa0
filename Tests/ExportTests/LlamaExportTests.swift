import Foundation
import Testing

@testable import Export

@Suite struct LlamaExportTests {
    /// The row reordering maps this project's RoPE (pairs 2i, 2i+1) onto Hugging Face's (pairs i, i + d_k/2):
    /// rotating the reordered vector the Hugging Face way gives the reordered rotation, for every position.
    @Test func reorderedRowsTurnInterleavedRoPEIntoHalves() {
        let dk = 8, heads = 2, cols = 1
        let q: [Float] = (0..<(heads * dk)).map { Float($0) * 0.37 - 1.1 }
        let hf = LlamaExport.ropeRowsForHF(q, heads: heads, headDim: dk, cols: cols)
        for position in [0, 1, 5, 63] {
            var ours = q, theirs = hf
            for h in 0..<heads {
                for i in 0..<(dk / 2) {
                    let angle = Float(position) * pow(10000, -Float(2 * i) / Float(dk))
                    let (c, s) = (cos(angle), sin(angle))
                    let (a, b) = (h * dk + 2 * i, h * dk + 2 * i + 1)  // ours: interleaved pairs
                    (ours[a], ours[b]) = (q[a] * c - q[b] * s, q[a] * s + q[b] * c)
                    let (x, y) = (h * dk + i, h * dk + i + dk / 2)  // Hugging Face: halves
                    (theirs[x], theirs[y]) = (hf[x] * c - hf[y] * s, hf[x] * s + hf[y] * c)
                }
            }
            #expect(LlamaExport.ropeRowsForHF(ours, heads: heads, headDim: dk, cols: cols) == theirs)
        }
        #expect(LlamaExport.ropeRowsFromHF(hf, heads: heads, headDim: dk, cols: cols) == q)
    }

    @Test func transposeSwapsRowsAndColumns() {
        let w: [Float] = [1, 2, 3, 4, 5, 6]  // [2, 3]
        #expect(LlamaExport.transpose(w, 2, 3) == [1, 4, 2, 5, 3, 6])
        #expect(LlamaExport.transpose(LlamaExport.transpose(w, 2, 3), 3, 2) == w)
    }
}
