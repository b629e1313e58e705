// runnel-specgen: generate Swift from Specs/. `--check` exits 1 when committed output is stale.
import Foundation
import RunnelSpecGen

var arguments = Array(CommandLine.arguments.dropFirst())
let check = arguments.contains("--check")
arguments.removeAll { $0 == "--check" }
let root = URL(fileURLWithPath: arguments.first ?? FileManager.default.currentDirectoryPath)
let generator = Generator(root: root)
do {
    if check {
        let stale = try generator.stalePaths()
        if stale.isEmpty {
            print("specgen: generated code is up to date")
        } else {
            print("specgen: generated code is stale; run tools/specgen. Stale files:")
            for path in stale { print("  \(path)") }
            exit(1)
        }
    } else {
        let changed = try generator.write()
        print("specgen: \(changed.count) file(s) written")
        for path in changed { print("  \(path)") }
    }
} catch {
    FileHandle.standardError.write(Data("specgen: \(error)\n".utf8))
    exit(2)
}
