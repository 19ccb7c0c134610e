using Hybrid.Cli.Commands;
using Hybrid.Node.Hosting;
using Hybrid.Storage;

namespace Hybrid.Cli.Tests;

/// <summary><c>hybrid ext ...</c> against a real node on an ephemeral port (commands parsed and run as from a shell).</summary>
public sealed class ExtCommandTests : IAsyncLifetime
{
    private static readonly Func<string[], int> NoServer = _ => throw new InvalidOperationException("server must not run");

    private static readonly string GetOne = Hybrid.Extensions.ExtensionExamples.Source("get");

    private readonly string _dir = Path.Combine(Path.GetTempPath(), "hybrid-cli-ext-" + Guid.NewGuid().ToString("N"));
    private HybridNode? _node;

    public async Task InitializeAsync()
    {
        _node = new HybridNode(new HybridNodeOptions
        {
            DataDirectory = _dir,
            NativePort = 0,
            RespPort = -1,
            MetricsPort = -1,
            Workers = 1,
            Durability = DurabilityMode.Memory,
            MemoryBudgetBytes = 8 << 20,
        });
        await _node.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _node!.DisposeAsync();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private (int Code, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        Console.SetOut(output);
        Console.SetError(error);
        try
        {
            int code = HybridCli.Run([.. args, "--port", _node!.NativePort.ToString(System.Globalization.CultureInfo.InvariantCulture)], NoServer);
            return (code, output.ToString(), error.ToString());
        }
        finally
        {
            Console.SetOut(oldOut);
            Console.SetError(oldErr);
        }
    }

    [Fact]
    public void Install_Invoke_List_Remove_FromTheCommandLine()
    {
        string file = Path.Combine(_dir, "get1.cs");
        File.WriteAllText(file, GetOne);
        Assert.Equal(0, Run("put", "k", "hello").Code);

        var install = Run("ext", "install", "get1", file);
        Assert.Equal((0, "get1"), (install.Code, install.Out.Trim()));
        var invoke = Run("ext", "invoke", "get1", "k");
        Assert.Equal((0, "hello"), (invoke.Code, invoke.Out.Trim()));
        Assert.Equal("68656c6c6f", Run("ext", "invoke", "get1", "--hex", "6b", "--output", "hex").Out.Trim());
        Assert.Equal("get1", Run("ext", "list").Out.Trim());

        var example = Run("ext", "install", "agg", "--example", "aggregate");
        Assert.Equal((0, "agg\nagg.keys\nagg.list"), (example.Code, example.Out.Trim().ReplaceLineEndings("\n")));
        // aggregate over an empty range of table 1: sum 0
        Assert.Equal("0", Run("ext", "invoke", "agg", "--hex", "01000000" + "0000000000000000" + "00000000" + "00000000", "--output", "int64").Out.Trim());

        Assert.Equal(0, Run("ext", "remove", "get1").Code);
        Assert.Equal(1, Run("ext", "remove", "get1").Code);
        var missing = Run("ext", "invoke", "get1", "k");
        Assert.Equal(1, missing.Code);
        Assert.Contains("NotFound", missing.Err);
    }

    [Fact]
    public void RejectedInstall_PrintsTheErrorWithItsPosition_ExitCode2()
    {
        string file = Path.Combine(_dir, "bad.cs");
        File.WriteAllText(file, GetOne.Replace("ctx.Write(value);", "System.Environment.Exit(1);"));
        var install = Run("ext", "install", "bad", file);
        Assert.Equal(2, install.Code);
        Assert.Contains("System.Environment", install.Err);
        Assert.Matches(@"\(\d+,\d+\)", install.Err);
        Assert.Equal("", Run("ext", "list").Out.Trim());
    }

    [Fact]
    public void Bench_DensityCase_RunsAgainstItsOwnNode()
    {
        var result = HybridCli.Build(NoServer).Parse(["ext", "bench", "--cases", "tenants", "--tenants", "3", "--workers", "1"]);
        Assert.Empty(result.Errors);
        var output = new StringWriter();
        var old = Console.Out;
        Console.SetOut(output);
        try
        {
            Assert.Equal(0, result.Invoke());
        }
        finally
        {
            Console.SetOut(old);
        }
        Assert.Contains("3 tenants, each with its own extension", output.ToString());
        Assert.Contains("modules 3", output.ToString());
    }
}
