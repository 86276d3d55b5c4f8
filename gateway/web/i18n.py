"""English and Chinese for the admin page: chosen from Accept-Language, switched by a cookie.

Templates write English and wrap it in `_()`; ZH maps each English text to Chinese. A test
checks that every `_()` text in the templates has its Chinese here.
"""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, g, redirect, request

from gateway.domain.lifecycle import LABELS_ZH
from gateway.web.auth import same_site_path

LANGS = ("en", "zh")
COOKIE = "bagscan_lang"
COOKIE_MAX_AGE = 365 * 24 * 3600

bp = Blueprint("i18n", __name__)

ZH: dict[str, str] = {
    # the rollout page (issue 19, gateway/templates/releases.html)
    "Each handheld fetches the release it is offered over its own connection, checks it, switches when no bag is open, and keeps it once it has reached the gateway; one that does not within 3 boots goes back by itself.": "每台手持机通过自己的连接下载所推送的版本并校验，在没有未封大包时切换，连上网关后保留新版本；3 次启动内未确认的版本会自动回退。",
    "Handhelds": "手持机",
    "Running": "运行版本",
    "Release": "版本",
    "Update": "更新状态",
    "Fetched": "已下载",
    "Since": "时间",
    "Releases": "固件版本",
    "Version": "版本号",
    "Bytes": "字节",
    "Uploaded": "上传时间",
    "Roll out": "推送",
    "All": "全部",
    "device ids": "设备编号",
    "No releases.": "暂无固件版本。",
    "Upload a release": "上传固件版本",
    "Upload": "上传",
    "A file of tools/release build, signed with the fleet's release key.": "由 tools/release build 生成、以发布密钥签名的文件。",
    # navigation and frame
    "Dashboard": "总览",
    "Bags": "大包",
    "Handovers": "交接单",
    "Devices": "手持终端",
    "Parcel lookup": "小包查询",
    "Users": "用户",
    "Log out": "退出登录",
    "Log in": "登录",
    "Username": "用户名",
    "Password": "密码",
    "Wrong username or password.": "用户名或密码错误。",
    "Too many failed logins. Try again in an hour.": "登录失败次数过多，请一小时后再试。",
    "Language": "语言",
    "Signed in as": "当前用户",
    # dashboard
    "Today's bags by status": "今日大包状态",
    "Late pickups": "超时未揽收",
    "No late pickups.": "没有超时未揽收的大包。",
    "Due": "截止时间",
    "Late by": "已超时",
    "Devices online": "在线终端",
    "Bags per hour today": "今日每小时大包数",
    "bagged": "已组包",
    "picked up": "已揽收",
    "arrived": "已到达",
    "Recent bags": "最新大包",
    "Live": "实时",
    "Offline": "离线",
    "Online": "在线",
    "Total": "合计",
    "Updated": "更新于",
    # bags
    "Bag number": "大包号",
    "Status": "状态",
    "Parcels": "小包数",
    "Weight (g)": "重量（克）",
    "Device": "终端",
    "Closed": "封包时间",
    "Opened": "开包时间",
    "No bags.": "没有大包。",
    "All statuses": "全部状态",
    "Date": "日期",
    "Late only": "仅超时",
    "Search bag or tracking number": "搜索大包号或运单号",
    "Filter": "筛选",
    "Clear": "清除",
    "Next page": "下一页",
    "First page": "第一页",
    "Export CSV": "导出 CSV",
    "Seller": "商家",
    "All sellers": "全部商家",
    "late": "超时",
    # bag detail
    "Bag": "大包",
    "Weight at bagging (g)": "组包重量（克）",
    "Weight at arrival (g)": "到仓重量（克）",
    "Dimensions (cm)": "尺寸（厘米）",
    "Download label (PDF)": "下载大包面单（PDF）",
    "Tracking number": "运单号",
    "Added": "加入时间",
    "Scan timeline": "扫描记录",
    "Status history": "状态历史",
    "Revised": "已重算",  # a late record changed a derived fact (bag page history)
    "Time": "时间",
    "Event": "事件",
    "From": "原状态",
    "To": "新状态",
    "Cause": "原因",
    "By": "操作人",
    "Pickup due": "揽收截止",
    "not yet": "尚无",
    "No such bag.": "没有这个大包。",
    # parcels
    "Look up": "查询",
    "No parcel with this tracking number.": "没有这个运单号的小包。",
    "Pickup scan": "揽收扫描",
    "Hub receipt": "分拨中心签收",
    "Online time": "上网时间",
    "Reason": "原因",
    "In bag": "所在大包",
    # devices
    "Last seen": "最后在线",
    "Battery (mV)": "电量（毫伏）",
    "Firmware": "固件",
    "Backlog": "待上传",
    "Clock skew (s)": "时钟偏差（秒）",
    "Bag numbers": "大包号段",
    "Refused / quarantined records": "被拒 / 隔离的记录",
    "Quarantined": "已隔离",
    "Clock not trusted": "时钟不可信",
    "Provision a device": "添加终端",
    "Change screen language": "更改屏幕语言",
    "Device id": "终端编号",
    "Provision": "添加",
    "Device provisioned. Copy the password now: it is shown only once.": "终端已添加。请立即记下密码，它只显示这一次。",
    "No devices.": "没有终端。",
    "This device exists. A new password disconnects the handheld until it is given the new one.": "该终端已存在。更换密码后，手持终端在收到新密码前将无法连接。",
    "Replace its password": "更换密码",
    "Screen language": "屏幕语言",
    "Set": "设置",
    # handovers and receipts
    "Receipt": "交接单",
    "Print receipt": "打印交接单",
    "Receipt PDF": "交接单 PDF",
    "Pickup date": "揽收日期",
    "Driver": "司机",
    "Driver signature": "司机签名",
    "No handovers.": "没有交接单。",
    "Seller copy": "商家联",
    "Driver copy": "司机联",
    "Audit copy": "稽核联",
    "Handover receipt": "交接单",
    "Receipt verified": "交接单验证通过",
    "This receipt could not be verified.": "这张交接单无法验证。",
    "Pickup time": "揽收时间",
    "Receipt (PDF)": "交接单（PDF）",
    "This receipt has not reached the gateway yet.": "这张交接单尚未传到网关。",
    "The courier's handheld sends it as soon as it is online. Open this link again later.": "司机的手持终端联网后会立即上传。请稍后再打开此链接。",
    "Handovers are not recorded by this gateway yet.": "本网关尚未记录交接单。",
    # users
    "Role": "角色",
    "Create user": "新建用户",
    "Created": "创建时间",
    # roles
    "admin": "管理员",
    "dispatcher": "调度员",
    "viewer": "只读用户",
    "Held out": "未计入大包",
    "not clean: the seller must take these out": "不合格：商家须将这些小包取出",
    # exceptions queue (issue 17)
    "Exceptions": "异常",
    "Open exceptions": "待处理异常",
    "No open exceptions.": "没有待处理的异常。",
    "Exception": "异常",
    "What to do": "处理方法",
    "Why is it resolved?": "为什么已解决？",
    "Why": "原因",
    "Resolve": "标记已解决",
    "Recently resolved": "最近解决",
    "Exception resolved.": "异常已标记解决。",
    "Disagreement": "网关与终端不一致",
    "Late pickup": "超时未揽收",
    "Received with exception": "签收异常",
    "Receipt failed": "签收失败",
    "In transit too long": "运输时间过长",
    "Handheld clock off": "手持终端时钟错误",
    "Handheld backlog": "手持终端积压未上传",
    "Handheld config behind": "手持终端配置未更新",
    "Call the pickup company about the driver; cancel the bag if the seller no longer ships it.": "联系揽收公司催司机；若商家不再发货，取消该大包。",
    "The weight at the hub differs from the weight at bagging: check the bag's contents with the hub and the seller.": "分拨中心称重与组包重量不符：与分拨中心和商家核对大包内容。",
    "The hub could not sign for the bag: find it at the hub, then retry the receipt on the bag's page.": "分拨中心未能签收：在分拨中心找到该大包后，在大包页面重试签收。",
    "Picked up more than 72 hours ago and not arrived: ask the driver and the hub where the bag is.": "揽收已超过 72 小时仍未到达：向司机和分拨中心查询大包下落。",
    "The handheld's clock is wrong: connect it to Wi-Fi so it sets its time, and check the times of its recent bags.": "手持终端时钟错误：连接 Wi-Fi 让它校时，并核对它最近大包的时间。",
    "The handheld has many records not sent: bring it into Wi-Fi range and keep it on until its backlog is zero.": "手持终端有大量记录未上传：带到 Wi-Fi 范围内并保持开机，直到待上传为零。",
    "The gateway held this parcel out of the bag: take it out, fix its data (import it, link its store) and bag it again.": "网关未将此小包计入大包：取出小包，修正数据（导入小包、关联店铺）后重新组包。",
    "The parcel is in two bags: open both, keep it in one and remove it from the other on the handheld.": "小包同时在两个大包中：打开两个大包，保留在其中一个，并在手持终端上从另一个移出。",
    "The handover counted a bag this gateway does not know: check the bag number on the receipt with the seller and the driver.": "交接单包含本网关未知的大包：与商家和司机核对交接单上的大包号。",
    "A handheld's record names a bag this gateway has not heard of: it is kept and applied when the bag's own records arrive. If they do not, sync the handheld that opened the bag.": "手持终端的记录提到本网关未知的大包：记录已保留，待该大包自己的记录到达后再应用。若一直未到，请让开包的手持终端同步。",
    "The handheld is online but has not taken the gateway's latest changes, so it checks scans against old data: restart it in Wi-Fi range; if it stays behind, check its firmware version and free flash, or swap it.": "手持终端在线但未接收网关的最新变更，扫描时按旧数据校验：在 Wi-Fi 范围内重启；若仍未更新，检查固件版本和剩余存储空间，或更换设备。",
    "This handover counted bags the gateway does not know": "此交接单包含本网关未知的大包",
    "Unknown to this gateway": "本网关未知",
    "Refused bags": "未交接的大包",
    "Config version": "配置版本",
    "Last config change": "最近配置变更",
    "Parcel index": "小包索引",
    "Behind": "配置落后",
    "sent": "已发送",
    "since": "自",
    "Check the handover with the seller and the driver; reprint its receipt.": "与商家和司机核对交接，并重新打印交接单。",
    "Reweigh the bag at the hub and record the receipt on the bag's page.": "在分拨中心重新称重，并在大包页面记录签收。",
    "Add the driver under Couriers, or check the badge the driver scanned.": "在“揽收司机”中添加该司机，或核对司机扫描的工牌。",
    "Register the store under Sellers and link it to the seller's account.": "在“商家”中登记店铺并关联到商家账户。",
    "Look at the bag and the handheld's records; resolve once it is settled.": "查看大包和手持终端的记录；处理完毕后标记已解决。",
    # actions by role (issue 17)
    "Cancel bag": "取消大包",
    "Reason for cancelling": "取消原因",
    "Bag cancelled.": "大包已取消。",
    "Why?": "原因？",
    "Done.": "已完成。",
    "Mark receipt failed": "标记签收失败",
    "Retry receipt": "重试签收",
    "Retry pickup": "重新揽收",
    "Record a hub receipt by hand": "手工登记分拨中心签收",
    "Tracking numbers, one a line": "运单号，每行一个",
    "Record hub receipt": "登记签收",
    "Hub receipt recorded for {n} parcels.": "已为 {n} 个小包登记签收。",
    "Manual hub receipt": "手工签收",
    "Print labels": "打印面单",
    "Choose": "选择",
    "Labels of the chosen bags (PDF)": "所选大包的面单（PDF）",
    "Labels of all bags closed today (PDF)": "今日封包的全部面单（PDF）",
    "Choose 1 to 500 bags for labels.": "请选择 1 到 500 个大包打印面单。",
    "Audit log": "操作日志",
    "Action": "操作",
    "Target": "对象",
    "Before": "操作前",
    "After": "操作后",
    "Nothing yet.": "暂无记录。",
    "Times are China time": "时间均为北京时间",
    "Not working:": "故障：",
    "The page comes back by itself when the part is back; reload then.": "故障部件恢复后页面自动恢复，届时请刷新。",
    "Saved.": "已保存。",
    "yes": "是",
    "no": "否",
    # set-up (issue 17)
    "Sellers": "商家",
    "Accounts": "账户",
    "Account": "账户",
    "Name": "名称",
    "Time zone": "时区",
    "Stores": "店铺",
    "Add account": "添加账户",
    "Seller id": "商家 ID",
    "Seller name": "商家名称",
    "Link to account": "关联到账户",
    "Add store": "添加店铺",
    "Addresses": "地址",
    "Address": "地址",
    "Kind": "类型",
    "Service": "揽收方式",
    "Warehouse": "仓库名称",
    "Contact": "联系人",
    "Phone": "电话",
    "Province": "省",
    "City": "市",
    "District": "区",
    "Street": "详细地址",
    "Seller id (return address)": "商家 ID（退货地址）",
    "Add address": "添加地址",
    "pickup": "揽收地址",
    "return": "退货地址",
    "milkrun": "Milkrun 免费揽收",
    "paid": "付费揽收",
    "Coverage and eligibility": "覆盖范围与申请条件",
    "Milkrun: districts of Shenzhen, Dongguan, Guangzhou, Foshan, Hangzhou and Jinhua, and Hong Kong; Mon-Sun 08:00-19:00; one approved pickup address per account.": "Milkrun：深圳、东莞、广州、佛山、杭州、金华的覆盖区县及香港；周一至周日 08:00-19:00；每个账户一个审核通过的揽收地址。",
    "Milkrun eligibility: on average at least {n} orders a day over the last {days} days ({hk} in Hong Kong), campaign, overseas-warehouse and resale orders not counted.": "Milkrun 申请条件：近 {days} 天日均订单不少于 {n} 单（香港 {hk} 单），不含大促、海外仓和转售订单。",
    "Paid pickup: 27 provinces, 203 cities; Mon-Sun 10:00-20:00; several addresses, told apart by warehouse name.": "付费揽收：27 个省、203 个城市；周一至周日 10:00-20:00；可有多个地址，以仓库名称区分。",
    "Each seller has exactly one return address: a new one replaces the old.": "每个商家只有一个退货地址：新地址替换旧地址。",
    "Milkrun covers this address: {milkrun}; paid pickup: {paid}.": "Milkrun 覆盖此地址：{milkrun}；付费揽收：{paid}。",
    "Couriers": "揽收司机",
    "Badge": "工牌",
    "Active": "启用",
    "PIN (4-12 digits)": "PIN（4-12 位数字）",
    "Add courier": "添加司机",
    "A viewer reads; a dispatcher also cancels bags, records receipts, resolves exceptions and prints labels; an admin also sets up sellers, couriers, users and handhelds.": "只读用户只能查看；调度员还可以取消大包、登记签收、处理异常和打印面单；管理员还可以设置商家、司机、用户和手持终端。",
    "Change role": "修改角色",
    # scan timeline: the handheld's records
    "Bag opened": "开包",
    "Parcel added": "加入小包",
    "Parcel removed": "移出小包",
    "Weighed": "称重",
    "Bag closed": "封包",
    "Driver signed in": "司机登录",
    "Pickup refused": "拒收",
    "Handover": "交接",
    "Arrival weighing": "到仓称重",
    # status history: events and causes
    "Routing": "分配路由",
    "Label assigned": "已分配面单",
    "Arrived": "已到达",
    "Received": "签收正常",
    "Cancel requested": "申请取消",
    "Cancel confirmed": "确认取消",
    "Cancel rejected": "取消被拒",
    "Close requested": "申请关闭",
    "Close confirmed": "确认关闭",
    "Close rejected": "关闭被拒",
    "bag closed on the handheld": "在手持终端上封包",
    "bag number from the device's range": "大包号取自终端号段",
    "cancel requested": "申请取消",
    "cancelled before pickup": "揽收前取消",
    "closed by the system": "系统关闭",
    "weighed at the hub": "在分拨中心称重",
    "scanned by driver {drv}": "司机 {drv} 扫描",
    "refused by driver {drv}: {why}": "司机 {drv} 拒收：{why}",
    "arrival {g} g vs bagging {b} g: difference {d} g, allowance {a} g": "到仓 {g} 克，组包 {b} 克：相差 {d} 克，允许 {a} 克",
    "arrival {g} g, no bagging weight": "到仓 {g} 克，无组包重量",
    "no goods": "揽收无货",
    "packaging not compliant": "包装不符",
    "bag overweight / overlong": "大包超重超长",
    # parcel statuses
    "pending (not ready to ship)": "待发货（未 RTS）",
    "ready to ship (RTS)": "可发货（RTS）",
    "cancelled": "已取消",
    "received at the hub": "分拨中心已签收",
}

# Online-time reasons (gateway.domain.online_time) in Chinese.
REASONS_ZH = {
    "PICKUP_SCAN": "上网时间回传为所在大包的揽收扫描时间",
    "NO_BAG_DATA": "无组包数据：上网时间为分拨中心签收时间",
    "BAG_NOT_SCANNED": "所在大包未被揽收扫描：上网时间为签收时间",
    "SCAN_AFTER_RECEIPT": "揽收扫描晚于签收（时钟错误）：上网时间为签收时间",
}


def current_lang() -> str:
    if "lang" not in g:
        chosen = request.cookies.get(COOKIE)
        if chosen not in LANGS:
            chosen = request.accept_languages.best_match(LANGS, default="en")
        g.lang = chosen
    return g.lang


def gettext(text: str) -> str:
    if current_lang() == "zh":
        return ZH.get(text, text)
    return text


def status_label_in(code: str | None, lang: str) -> str:
    if not code:
        return ""
    if lang == "zh":
        return LABELS_ZH.get(code, code)
    return code.replace("_", " ")


def status_label(code: str | None) -> str:
    return status_label_in(code, current_lang())


@bp.post("/lang")
def switch():
    """Remember the chosen language (the form carries its CSRF token like every form)."""
    lang = request.form.get("lang")
    response = redirect(same_site_path(request.form.get("back"), "/"))
    if lang in LANGS:
        secure = bool(current_app.config.get("SESSION_COOKIE_SECURE"))
        response.set_cookie(
            COOKIE, lang, max_age=COOKIE_MAX_AGE, httponly=True, samesite="Lax", secure=secure
        )
    return response


def init_app(app: Flask) -> None:
    app.jinja_env.globals["_"] = gettext
    app.jinja_env.globals["current_lang"] = current_lang
    app.jinja_env.globals["status_label"] = status_label
    app.jinja_env.globals["LANGS"] = LANGS
