package rules

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

func BenchmarkTmpRaw(b *testing.B) {
	build := buildDir(b)
	wasm, _ := os.ReadFile(filepath.Join(build, "examples", "c-example.wasm"))
	var bt Batch
	for i := 0; i < 2048; i++ {
		bt.AddJSON([]byte(`{"kind":"exec","proc.name":"nginx","container.id":"x"}`))
	}
	for _, cod := range []bool{false, true} {
		b.Run(fmt.Sprint("closeOnDone=", cod), func(b *testing.B) {
			ctx := context.Background()
			rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCloseOnContextDone(cod))
			defer rt.Close(ctx)
			rt.NewHostModuleBuilder("vigil").NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) {}), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, nil).Export("log").Instantiate(ctx)
			mod, err := rt.Instantiate(ctx, wasm)
			if err != nil {
				b.Fatal(err)
			}
			res, _ := mod.ExportedFunction("vigil_input").Call(ctx, uint64(len(bt.buf)))
			mod.Memory().Write(uint32(res[0]), bt.buf)
			ev := mod.ExportedFunction("vigil_evaluate")
			stack := make([]uint64, 3)
			b.ResetTimer()
			cpu := processCPU()
			for i := 0; i < b.N; i++ {
				stack[0], stack[1], stack[2] = res[0], uint64(len(bt.buf)), 2048
				if err := ev.CallWithStack(ctx, stack); err != nil {
					b.Fatal(err)
				}
			}
			reportPerEvent(b, 2048, cpu)
		})
	}
}
