// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "ngpt",
    products: [
        .library(name: "Kernels", targets: ["Kernels"]),
        .executable(name: "ngpt-bench", targets: ["ngpt-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // System libraries
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS",
                       providers: [.apt(["libopenblas-dev"])]),
        // A plain C API over SentencePiece's C++ classes (every entry point catches, ids range-checked).
        .target(name: "CSentencePiece",
                linkerSettings: [.linkedLibrary("sentencepiece"), .linkedLibrary("sentencepiece_train")]),

        // Libraries
        .target(name: "Kernels", dependencies: ["CBLAS"]),

        // Executables
        .executableTarget(name: "ngpt-bench", dependencies: [
            "Kernels", "CBLAS",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // Tests
        .testTarget(name: "KernelsTests", dependencies: ["Kernels"]),
        .testTarget(name: "CSentencePieceTests", dependencies: ["CSentencePiece"]),
    ],
    cxxLanguageStandard: .cxx17
)
