"""The import and export screens' own words, in English and Chinese."""

from __future__ import annotations

WORDS: dict[str, tuple[str, str]] = {
    "import": ("Import", "导入"), "export": ("Export", "导出"), "template": ("Download the template", "下载导入模板"),
    "file": ("File (.xlsx or .csv)", "文件（.xlsx 或 .csv）"), "upload": ("Upload and map columns", "上传并匹配列"),
    "mode": ("Mode", "方式"), "insert": ("Insert new records", "新增记录"), "update": ("Update existing records", "更新已有记录"),
    "upsert": ("Insert or update", "新增或更新"), "key": ("Key column", "匹配字段"), "auto": ("(automatic)", "（自动）"),
    "on_error": ("When rows have errors", "有错误行时"), "rollback": ("Import nothing", "全部不导入"),
    "skip": ("Import the valid rows", "只导入正确的行"), "recent": ("Your recent imports", "最近的导入"),
    "mapping": ("Match the columns", "匹配列"), "column": ("Column", "列"), "field": ("Field", "字段"),
    "ignore": ("(do not import)", "（不导入）"), "preview": ("Preview (dry run)", "预览（试运行）"),
    "apply": ("Import now", "确认导入"), "undo": ("Undo this import", "撤销本次导入"), "row": ("Row", "行"),
    "value": ("Value", "值"), "reason": ("Problem", "问题"), "errors": ("Rows with errors", "错误行"),
    "error_report": ("Download the error report", "下载错误报告"), "to_insert": ("To insert", "将新增"),
    "to_update": ("To update", "将更新"), "unchanged": ("Unchanged", "未变化"), "inserted": ("Inserted", "已新增"),
    "updated": ("Updated", "已更新"), "running": ("Working…", "处理中…"), "refresh": ("Refresh", "刷新"),
    "nothing_written": ("Nothing was written.", "未写入任何数据。"), "done": ("Import finished.", "导入完成。"),
    "undone": ("This import was undone.", "本次导入已撤销。"), "failed": ("The import failed.", "导入失败。"),
    "previewed": ("Preview — nothing has been written yet.", "预览——尚未写入任何数据。"), "back": ("Back to the list", "返回列表"),
    "status": ("Status", "状态"), "records": ("Records", "记录数"), "before": ("Before", "原值"), "after": ("After", "新值"),
    "unchanged_hint": ("These rows match their records already: importing them changes nothing.", "这些行与已有记录一致：导入不会改变它们。"),
    "new_import": ("New import", "新的导入"), "interrupted": ("The import was interrupted.", "导入被中断。"),
}


def word(key: str, locale: str) -> str:
    """The word `key` in `locale` (English when missing)."""
    en, zh = WORDS.get(key, (key, key))
    return zh if locale == "zh" else en
