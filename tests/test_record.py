"""benchmarks/record.py: the machine line every committed record carries."""

from __future__ import annotations

from script_loader import ROOT, load_script

record = load_script(ROOT / "benchmarks" / "record.py", "record_under_test")

#: two processors of a virtual machine, as Linux lists them (fields abridged)
CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 167
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu vme avx2

processor\t: 1
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 85
model name\t: Other Processor
"""


def test_cpu_name_is_the_first_processors_name_and_numbers():
    assert record.cpu_name(CPUINFO) == "Intel(R) Xeon(R) Processor (cpu family 6, model 167)"


def test_cpu_name_without_numbers_or_name():
    assert record.cpu_name("model name\t: Some CPU\n") == "Some CPU"
    assert record.cpu_name("processor\t: 0\nvendor_id\t: X\n") is None
    assert record.cpu_name("") is None


def test_machine_names_the_cpu(monkeypatch):
    monkeypatch.setattr(record, "cpu_name", lambda: "Test CPU (cpu family 1, model 2)")
    line = record.machine()
    assert "Test CPU (cpu family 1, model 2)" in line and "CPUs" in line and "Python" in line
