// swift-tools-version:6.0
import PackageDescription
import Foundation

// The row kernels are explicit SIMD16 code. Swift's default x86-64 target is SSE2, which splits every 16-lane
// operation into four and makes the exp polynomial ~3× slower (swift-notes §3). Like llm.c's -march=native, the
// kernels are compiled for the CPU that builds them; set NGPT_PORTABLE=1 for a binary that runs on any x86-64.
let portable = ProcessInfo.processInfo.environment["NGPT_PORTABLE"] == "1"
var kernelFlags: [SwiftSetting] = []
#if arch(x86_64)
if !portable { kernelFlags.append(.unsafeFlags(["-target-cpu", "native"])) }
#endif

let package = Package(
    name: "ngpt",
    products: [
        .library(name: "Common", targets: ["Common"]),
        .library(name: "Kernels", targets: ["Kernels"]),
        .library(name: "Tokenizer", targets: ["Tokenizer"]),
        .library(name: "DataPipeline", targets: ["DataPipeline"]),
        .library(name: "NGPT", targets: ["NGPT"]),
        .library(name: "Training", targets: ["Training"]),
        .library(name: "Runs", targets: ["Runs"]),
        .library(name: "Sampling", targets: ["Sampling"]),
        .library(name: "Inspect", targets: ["Inspect"]),
        .library(name: "Serving", targets: ["Serving"]),
        .executable(name: "ngpt-sample", targets: ["ngpt-sample"]),
        .executable(name: "ngpt-compare", targets: ["ngpt-compare"]),
        .executable(name: "ngpt-inspect", targets: ["ngpt-inspect"]),
        .executable(name: "ngpt-export", targets: ["ngpt-export"]),
        .executable(name: "ngpt-plot", targets: ["ngpt-plot"]),
        .executable(name: "ngpt-train", targets: ["ngpt-train"]),
        .executable(name: "ngpt-bench", targets: ["ngpt-bench"]),
        .executable(name: "ngpt-serve", targets: ["ngpt-serve"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.0.0"),  // Hummingbird's; NIOCore's Channel
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.0.0"),  // Hummingbird's
    ],
    targets: [
        // System libraries
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS",
                       providers: [.apt(["libopenblas-dev"])]),
        // MPI (Open MPI or MPICH) for data-parallel training: a header of plain C functions over its macros.
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "mpi-c",
                       providers: [.apt(["libopenmpi-dev"])]),
        // zlib, for gzip-compressed corpora.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib",
                       providers: [.apt(["zlib1g-dev"])]),
        // A plain C API over SentencePiece's C++ classes (every entry point catches, ids range-checked).
        .target(name: "CSentencePiece",
                linkerSettings: [.linkedLibrary("sentencepiece"), .linkedLibrary("sentencepiece_train")]),

        // ngpt's own AVX-512 GEMM (fp32 and bf16): per-function target attributes, chosen at run time.
        .target(name: "CGEMM"),
        // Row kernels in C where Swift's SIMD cannot say it: AdamW's vector square root (vsqrtps), SwiGLU's outputs
        // and the logit gradient narrowed to bf16 (rounded by CGEMM's ngpt_bf16.h, as packing rounds).
        .target(name: "CRowKernels", dependencies: ["CGEMM"]),
        // The program's one pool of worker threads.
        .target(name: "CThreadPool"),
        // Stop requests by signal, handled where the sender is visible.
        .target(name: "CSignals"),

        // Libraries, bottom up
        // What every layer uses: the user error, reading and writing files safely, locks, hashing, formatting, strict
        // JSON, the available memory.
        .target(name: "Common"),
        .target(
            name: "Kernels", dependencies: ["CBLAS", "CGEMM", "CRowKernels", "CThreadPool", "Common"],
            swiftSettings: kernelFlags),
        .target(name: "Tokenizer", dependencies: ["CSentencePiece", "Common"]),
        // Corpus files → tokenizer → token shards → batches.
        .target(name: "DataPipeline", dependencies: ["CZlib", "Common", "Kernels", "Tokenizer"]),
        .target(name: "NGPT", dependencies: ["Common", "Kernels"]),
        // What every tool reads of a run: checkpoints, loading, the evaluation loop, decoding, charts.
        .target(name: "Runs", dependencies: ["Common", "Kernels", "Tokenizer", "DataPipeline", "NGPT"]),
        // The processes of a data-parallel job (MPI), below the trainer that uses them.
        .target(name: "Cluster", dependencies: ["CMPI"]),
        .target(name: "Training", dependencies: ["CSignals", "Common", "Kernels", "Tokenizer", "DataPipeline", "NGPT", "Runs", "Cluster"]),
        .target(name: "Sampling", dependencies: ["Common", "Kernels", "Tokenizer", "DataPipeline", "NGPT", "Runs"]),
        .target(name: "Inspect", dependencies: ["CBLAS", "Common", "Kernels", "Tokenizer", "DataPipeline", "NGPT", "Runs"]),
        // The executables' shared entry point (one way to report a user error).
        .target(name: "ToolSupport", dependencies: ["Common", "Kernels", .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        // Executables
        .executableTarget(name: "ngpt-bench", dependencies: [
            "Common", "DataPipeline", "Kernels", "CBLAS", "CGEMM", "NGPT", "Sampling", "ToolSupport", "Training",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "ngpt-train", dependencies: [
            "Common", "DataPipeline", "Kernels", "Tokenizer", "Training", "Cluster", "ToolSupport",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "ngpt-compare", dependencies: [
            "Common", "DataPipeline", "Kernels", "Tokenizer", "Training", "ToolSupport",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "ngpt-plot", dependencies: [
            "Common", "DataPipeline", "Kernels", "Runs", "ToolSupport",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .target(name: "Export", dependencies: ["Common", "NGPT", "Runs", "Tokenizer"]),
        .target(name: "Serving", dependencies: ["Common", "NGPT", "Sampling", "Tokenizer"]),
        .executableTarget(name: "ngpt-serve", dependencies: [
            "Common", "Kernels", "NGPT", "Runs", "Sampling", "Serving", "ToolSupport",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .executableTarget(name: "ngpt-export", dependencies: [
            "Export", "Runs", "ToolSupport",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "ngpt-inspect", dependencies: [
            "Common", "DataPipeline", "Kernels", "Tokenizer", "Runs", "Inspect", "ToolSupport",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "ngpt-sample", dependencies: [
            "Common", "DataPipeline", "Kernels", "NGPT", "Runs", "Sampling", "ToolSupport",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // Tests
        .target(name: "TestSupport", dependencies: ["Common", "Kernels", "Tokenizer"], path: "Tests/TestSupport"),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "CBLAS", "CGEMM", "CRowKernels"]),
        .testTarget(name: "CSentencePieceTests", dependencies: ["CSentencePiece"]),
        .testTarget(name: "TokenizerTests", dependencies: ["TestSupport", "Common", "Tokenizer", "Kernels"]),
        .testTarget(name: "DataPipelineTests", dependencies: ["TestSupport", "Common", "DataPipeline", "Tokenizer", "Kernels"]),
        .testTarget(name: "NGPTTests", dependencies: ["Common", "NGPT", "Kernels"], resources: [.copy("Fixtures")]),
        .testTarget(name: "TrainingTests", dependencies: ["TestSupport", "Common", "Training", "NGPT", "Tokenizer", "DataPipeline", "Runs", "Kernels"]),
        .testTarget(name: "InspectTests", dependencies: ["Common", "Inspect", "Runs", "NGPT", "Kernels"]),
        .testTarget(name: "SamplingTests", dependencies: ["TestSupport", "Common", "Sampling", "Runs", "Training", "NGPT", "Tokenizer", "DataPipeline", "Kernels"],
                    exclude: ["README.md"], resources: [.copy("Fixtures")]),
        .testTarget(name: "ServingTests", dependencies: ["TestSupport", "Common", "Serving", "Sampling", "Runs", "NGPT", "Tokenizer"],
                    exclude: ["openai_check.py", "playground_check.py", "hostile_check.py"]),
        .testTarget(name: "ExportTests", dependencies: ["TestSupport", "Common", "Export", "Runs", "Sampling", "NGPT", "Tokenizer"],
                    exclude: ["hf_check.py"]),
        .testTarget(name: "ToolTests", dependencies: ["TestSupport", "Common", "Training", "NGPT", "Kernels"], exclude: ["Snapshots"]),
    ],
    cxxLanguageStandard: .cxx17
)
